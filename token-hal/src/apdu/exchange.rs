//! One command, one answer, whatever the link: the APDU plumbing written once
//! (DESIGN.md, "APDU card driver"):
//!
//! - commands longer than the short form go extended when the link allows it, else as a
//!   command chain;
//! - `61 xx` is followed by GET RESPONSE until the data is complete;
//! - `6C xx` re-sends the command once with the Le the card asked for;
//! - every length in a response is checked against what was asked for before it is
//!   used, and the loops are bounded, so a hostile or broken card cannot make the host
//!   read or allocate without limit (the CVE pattern of ../shared/reference/security.md:
//!   chained GET RESPONSE writing past a buffer, unchecked response lengths).

use super::command::{Command, EXTENDED_MAX, Response, SHORT_MAX_DATA, SHORT_MAX_LE};
use super::transport::Transport;
use crate::error::{Error, Result};

/// What a link can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkCaps {
    /// Extended-length APDUs reach the card (most CCID readers do not: ISO 7816-3 T=1
    /// readers with dwMaxCCIDMessageLength = 271 carry short APDUs only).
    pub extended: bool,
}

impl LinkCaps {
    /// Short APDUs only; long commands are chained.
    pub const SHORT: LinkCaps = LinkCaps { extended: false };
    /// Extended APDUs.
    pub const EXTENDED: LinkCaps = LinkCaps { extended: true };
}

/// The most GET RESPONSE rounds one command may take (65 536 bytes in 256-byte rounds,
/// with room to spare).
const MAX_GET_RESPONSE: usize = 260;

/// GET RESPONSE (ISO 7816-4 §7.6.1) for `n` bytes (0x00 = 256).
fn get_response(n: u8) -> Command {
    let le = if n == 0 { SHORT_MAX_LE } else { usize::from(n) };
    Command::new(0x00, 0xC0, 0x00, 0x00).with_le(le)
}

fn send(t: &dyn Transport, cmd: &Command, caps: LinkCaps) -> Result<Response> {
    let raw = if caps.extended {
        cmd.encode()?
    } else {
        cmd.encode_short()?
    };
    Response::parse(&t.transmit(&raw)?)
}

/// Sends `cmd` and returns the card's complete answer: all its data (GET RESPONSE rounds
/// joined) and the final status word. The caller maps the status word with
/// [`super::status::check`]. The response data never exceeds the command's Ne (0 when it
/// expects none); a card that sends more is a device error.
pub fn exchange(t: &dyn Transport, caps: LinkCaps, cmd: &Command) -> Result<Response> {
    let ne = cmd.le.unwrap_or(0);
    let mut parts = if caps.extended || cmd.data.len() <= SHORT_MAX_DATA {
        vec![cmd.clone()]
    } else {
        cmd.chain(SHORT_MAX_DATA)?
    };
    let Some(mut last) = parts.pop() else {
        return Err(Error::Internal("empty command chain".into()));
    };
    for part in &parts {
        let r = send(t, part, caps)?;
        if r.sw.sw1() == 0x61 || !r.data.is_empty() {
            return Err(Error::Device(format!(
                "the card answered a chained command part with data (SW {})",
                r.sw
            )));
        }
        if r.sw != super::command::Sw::OK {
            // The chain was refused: that status is the answer.
            return Ok(r);
        }
    }
    // Over a short link, ask for at most 256 bytes; the rest comes through 61xx.
    if !caps.extended
        && let Some(n) = last.le
    {
        last.le = Some(n.min(SHORT_MAX_LE));
    }
    let mut r = send(t, &last, caps)?;
    if r.sw.sw1() == 0x6C {
        // Wrong Le: the card says how many bytes it has. Re-send once.
        let n = if r.sw.sw2() == 0 {
            SHORT_MAX_LE
        } else {
            usize::from(r.sw.sw2())
        };
        if cmd.le.is_none() || n > ne {
            return Err(Error::Device(format!(
                "the card offers {n} bytes where {ne} were expected"
            )));
        }
        last.le = Some(n);
        r = send(t, &last, caps)?;
        if r.sw.sw1() == 0x6C {
            return Err(Error::Device("the card asked twice for another Le".into()));
        }
    }
    let mut data = Vec::new();
    let mut rounds = 0;
    loop {
        if data.len() + r.data.len() > ne || data.len() + r.data.len() > EXTENDED_MAX {
            return Err(Error::Device(format!(
                "response of {} bytes exceeds the {ne} expected",
                data.len() + r.data.len()
            )));
        }
        data.extend_from_slice(&r.data);
        if r.sw.sw1() != 0x61 {
            return Ok(Response::new(data, r.sw));
        }
        rounds += 1;
        if rounds > MAX_GET_RESPONSE {
            return Err(Error::Device("endless GET RESPONSE chain".into()));
        }
        r = send(t, &get_response(r.sw.sw2()), LinkCaps::SHORT)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::super::command::Sw;
    use super::super::transport::Transaction;
    use super::*;

    /// A card that answers from a script and records what it was sent.
    struct Scripted {
        answers: Mutex<VecDeque<Vec<u8>>>,
        sent: Mutex<Vec<Vec<u8>>>,
    }

    struct NoHold;
    impl Transaction for NoHold {}

    impl Scripted {
        fn new(answers: &[&[u8]]) -> Self {
            Self {
                answers: Mutex::new(answers.iter().map(|a| a.to_vec()).collect()),
                sent: Mutex::new(Vec::new()),
            }
        }
        fn sent(&self) -> Vec<Vec<u8>> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Transport for Scripted {
        fn id(&self) -> String {
            "scripted".into()
        }
        fn atr(&self) -> Option<Vec<u8>> {
            None
        }
        fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>> {
            self.sent.lock().unwrap().push(apdu.to_vec());
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .ok_or(Error::DeviceRemoved)
        }
        fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
            Ok(Box::new(NoHold))
        }
        fn is_present(&self) -> bool {
            true
        }
    }

    fn cmd(data: usize, le: Option<usize>) -> Command {
        Command {
            cla: 0x80,
            ins: 0x42,
            p1: 0,
            p2: 0,
            data: vec![7; data],
            le,
        }
    }

    #[test]
    fn get_response_rounds_are_joined() {
        // 2 bytes and "256 more", then 256 bytes and "2 more", then the last 2.
        let mut mid = vec![3u8; 256];
        mid.extend_from_slice(&[0x61, 0x02]);
        let t2 = Scripted::new(&[&[1, 2, 0x61, 0x00], &mid, &[4, 4, 0x90, 0x00]]);
        let r = exchange(&t2, LinkCaps::SHORT, &cmd(0, Some(1000))).unwrap();
        assert_eq!(r.sw, Sw::OK);
        assert_eq!(r.data.len(), 2 + 256 + 2);
        let sent = t2.sent();
        assert_eq!(sent[1], [0x00, 0xC0, 0x00, 0x00, 0x00]);
        assert_eq!(sent[2], [0x00, 0xC0, 0x00, 0x00, 0x02]);
    }

    #[test]
    fn response_longer_than_asked_is_refused() {
        let t = Scripted::new(&[&[1, 2, 3, 0x90, 0x00]]);
        assert!(matches!(
            exchange(&t, LinkCaps::SHORT, &cmd(0, Some(2))),
            Err(Error::Device(_))
        ));
        // No data expected at all.
        let t = Scripted::new(&[&[1, 0x90, 0x00]]);
        assert!(exchange(&t, LinkCaps::SHORT, &cmd(3, None)).is_err());
        // 61xx adding up past Ne.
        let t = Scripted::new(&[&[1, 0x61, 0x05], &[1, 2, 3, 4, 5, 0x90, 0x00]]);
        assert!(exchange(&t, LinkCaps::SHORT, &cmd(0, Some(4))).is_err());
    }

    #[test]
    fn endless_get_response_stops() {
        let answers: Vec<Vec<u8>> = (0..400).map(|_| vec![0x61, 0x00]).collect();
        let refs: Vec<&[u8]> = answers.iter().map(|a| a.as_slice()).collect();
        let t = Scripted::new(&refs);
        assert!(matches!(
            exchange(&t, LinkCaps::SHORT, &cmd(0, Some(65_536))),
            Err(Error::Device(_))
        ));
        assert!(t.sent().len() <= MAX_GET_RESPONSE + 1);
    }

    #[test]
    fn wrong_le_resends_once() {
        let t = Scripted::new(&[&[0x6C, 0x03], &[9, 9, 9, 0x90, 0x00]]);
        let r = exchange(&t, LinkCaps::SHORT, &cmd(0, Some(256))).unwrap();
        assert_eq!(r.data, [9, 9, 9]);
        assert_eq!(t.sent()[1], [0x80, 0x42, 0, 0, 3]);
        let t = Scripted::new(&[&[0x6C, 0x03], &[0x6C, 0x03]]);
        assert!(exchange(&t, LinkCaps::SHORT, &cmd(0, Some(256))).is_err());
        // 6Cxx offering more than asked for is refused.
        let t = Scripted::new(&[&[0x6C, 0x10]]);
        assert!(exchange(&t, LinkCaps::SHORT, &cmd(0, Some(8))).is_err());
    }

    #[test]
    fn long_commands_chain_on_short_links_and_go_extended_otherwise() {
        let t = Scripted::new(&[&[0x90, 0x00], &[0x90, 0x00], &[5, 0x90, 0x00]]);
        let r = exchange(&t, LinkCaps::SHORT, &cmd(600, Some(1))).unwrap();
        assert_eq!(r.data, [5]);
        let sent = t.sent();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0][0], 0x90);
        assert_eq!(sent[2][0], 0x80);
        let t = Scripted::new(&[&[5, 0x90, 0x00]]);
        exchange(&t, LinkCaps::EXTENDED, &cmd(600, Some(1))).unwrap();
        assert_eq!(t.sent()[0][4], 0x00, "extended form");
        // A refused chain part ends the command with its status.
        let t = Scripted::new(&[&[0x6A, 0x80]]);
        let r = exchange(&t, LinkCaps::SHORT, &cmd(600, None)).unwrap();
        assert_eq!(r.sw, Sw(0x6A80));
        assert_eq!(t.sent().len(), 1);
    }

    #[test]
    fn truncated_and_missing_answers_are_errors() {
        let t = Scripted::new(&[&[0x90]]);
        assert!(matches!(
            exchange(&t, LinkCaps::SHORT, &cmd(0, None)),
            Err(Error::Device(_))
        ));
        let t = Scripted::new(&[]);
        assert!(matches!(
            exchange(&t, LinkCaps::SHORT, &cmd(0, None)),
            Err(Error::DeviceRemoved)
        ));
    }
}
