//! ISO/IEC 7816-4 command and response APDUs: encoding in the short and extended forms,
//! command chaining, and parsing a response into data and status word.
//!
//! Every length is checked before it is used: a command that cannot be encoded is an
//! [`Error::InvalidArgument`], a response shorter than its status word is
//! [`Error::Device`]. Nothing here panics on any input.

use crate::error::{Error, Result};

/// Largest data field of a short command (Lc = 1..=255).
pub const SHORT_MAX_DATA: usize = 255;
/// Largest expected length of a short command (Le = 0x00 means 256).
pub const SHORT_MAX_LE: usize = 256;
/// Largest data field or expected length of an extended command.
pub const EXTENDED_MAX: usize = 65_536;
/// The chaining bit of the class byte (ISO 7816-4 §5.4.1: "command chaining control").
pub const CLA_CHAINING: u8 = 0x10;

/// One command APDU before encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// First parameter.
    pub p1: u8,
    /// Second parameter.
    pub p2: u8,
    /// The data field (Nc bytes; empty for cases 1 and 2).
    pub data: Vec<u8>,
    /// The expected response length Ne: None for cases 1 and 3; `Some(n)` with
    /// 1 ≤ n ≤ 65536 otherwise (256 fits the short form, as Le = 0x00).
    pub le: Option<usize>,
}

impl std::fmt::Debug for Command {
    // Command data may carry key material or PIN blocks: only the header and the sizes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Command({:02X} {:02X} {:02X} {:02X}, {} bytes, le {:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

impl Command {
    /// A command with no data and no expected response (case 1).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
        }
    }

    /// The same command with a data field.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// The same command expecting up to `le` response bytes.
    pub fn with_le(mut self, le: usize) -> Self {
        self.le = Some(le);
        self
    }

    /// Whether the short form can carry this command.
    pub fn fits_short(&self) -> bool {
        self.data.len() <= SHORT_MAX_DATA && self.le.is_none_or(|n| n <= SHORT_MAX_LE)
    }

    fn check(&self) -> Result<()> {
        if self.data.len() > EXTENDED_MAX - 1 {
            return Err(Error::invalid_arg(format!(
                "APDU data of {} bytes exceeds the extended form",
                self.data.len()
            )));
        }
        if let Some(n) = self.le
            && !(1..=EXTENDED_MAX).contains(&n)
        {
            return Err(Error::invalid_arg(format!("APDU Le {n} out of range")));
        }
        Ok(())
    }

    /// The encoded APDU: the short form when it fits, else the extended form.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.fits_short() {
            self.encode_short()
        } else {
            self.encode_extended()
        }
    }

    /// The short form (ISO 7816-4 §5.2, cases 1S–4S).
    pub fn encode_short(&self) -> Result<Vec<u8>> {
        self.check()?;
        if !self.fits_short() {
            return Err(Error::invalid_arg("APDU does not fit the short form"));
        }
        let mut out = Vec::with_capacity(6 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(n) = self.le {
            // 256 is encoded as 0x00.
            out.push((n % 256) as u8);
        }
        Ok(out)
    }

    /// The extended form (cases 2E–4E): a zero byte, then two-byte Lc and Le.
    pub fn encode_extended(&self) -> Result<Vec<u8>> {
        self.check()?;
        let mut out = Vec::with_capacity(9 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2, 0x00]);
        if !self.data.is_empty() {
            out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.data);
        }
        if let Some(n) = self.le {
            // 65536 is encoded as 0x0000.
            out.extend_from_slice(&((n % EXTENDED_MAX) as u16).to_be_bytes());
        }
        Ok(out)
    }

    /// The command split for command chaining (ISO 7816-4 §5.4.1) into short APDUs of at
    /// most `chunk` data bytes: every part but the last has the chaining bit set and
    /// expects no response data; the last carries the command's Le.
    pub fn chain(&self, chunk: usize) -> Result<Vec<Command>> {
        self.check()?;
        if chunk == 0 || chunk > SHORT_MAX_DATA {
            return Err(Error::invalid_arg("chaining chunk must be 1 to 255 bytes"));
        }
        if self.cla & CLA_CHAINING != 0 {
            return Err(Error::invalid_arg(
                "class byte already has the chaining bit",
            ));
        }
        if self.data.len() <= chunk {
            return Ok(vec![self.clone()]);
        }
        let parts: Vec<&[u8]> = self.data.chunks(chunk).collect();
        let last = parts.len() - 1;
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(i, d)| Command {
                cla: if i == last {
                    self.cla
                } else {
                    self.cla | CLA_CHAINING
                },
                ins: self.ins,
                p1: self.p1,
                p2: self.p2,
                data: d.to_vec(),
                le: if i == last { self.le } else { None },
            })
            .collect())
    }

    /// Parses an encoded command APDU (what a card receives). Malformed lengths are
    /// errors, never panics. Returns the command and whether it used the extended form.
    pub fn decode(apdu: &[u8]) -> Result<(Command, bool)> {
        let bad = |why: &str| Error::invalid_data(format!("malformed command APDU: {why}"));
        let [cla, ins, p1, p2, body @ ..] = apdu else {
            return Err(bad("shorter than its header"));
        };
        let mut cmd = Command::new(*cla, *ins, *p1, *p2);
        let ne = |v: usize, max: usize| if v == 0 { max } else { v };
        match body {
            // Case 1.
            [] => Ok((cmd, false)),
            // Case 2S.
            [le] => {
                cmd.le = Some(ne(usize::from(*le), SHORT_MAX_LE));
                Ok((cmd, false))
            }
            // Extended forms start with a zero byte and have at least 3 body bytes.
            [0, rest @ ..] if rest.len() >= 2 => {
                let [h, l, rest @ ..] = rest else {
                    return Err(bad("truncated extended length"));
                };
                let n = usize::from(u16::from_be_bytes([*h, *l]));
                if rest.is_empty() {
                    // Case 2E.
                    cmd.le = Some(ne(n, EXTENDED_MAX));
                    return Ok((cmd, true));
                }
                if n == 0 {
                    return Err(bad("extended Lc of zero"));
                }
                let data = rest.get(..n).ok_or_else(|| bad("data shorter than Lc"))?;
                cmd.data = data.to_vec();
                match &rest[n..] {
                    [] => Ok((cmd, true)),
                    [h, l] => {
                        cmd.le = Some(ne(usize::from(u16::from_be_bytes([*h, *l])), EXTENDED_MAX));
                        Ok((cmd, true))
                    }
                    _ => Err(bad("trailing bytes after the extended Le")),
                }
            }
            // Cases 3S and 4S.
            [lc, rest @ ..] => {
                let n = usize::from(*lc);
                if n == 0 {
                    return Err(bad("short Lc of zero"));
                }
                let data = rest.get(..n).ok_or_else(|| bad("data shorter than Lc"))?;
                cmd.data = data.to_vec();
                match &rest[n..] {
                    [] => Ok((cmd, false)),
                    [le] => {
                        cmd.le = Some(ne(usize::from(*le), SHORT_MAX_LE));
                        Ok((cmd, false))
                    }
                    _ => Err(bad("trailing bytes after Le")),
                }
            }
        }
    }
}

/// A status word SW1 SW2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sw(pub u16);

impl Sw {
    /// 90 00: success.
    pub const OK: Sw = Sw(0x9000);
    /// SW1.
    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// SW2.
    pub fn sw2(self) -> u8 {
        self.0 as u8
    }
}

impl std::fmt::Display for Sw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

/// One response APDU: its data and its status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The data field.
    pub data: Vec<u8>,
    /// The trailer.
    pub sw: Sw,
}

impl std::fmt::Debug for Response {
    // Response data may be a decrypted key: only the size and the status.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response({} bytes, SW {})", self.data.len(), self.sw)
    }
}

impl Response {
    /// Splits a raw response into data and status word. A response shorter than two
    /// bytes is a device error (a truncated answer), not a panic.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        match raw {
            [data @ .., s1, s2] => Ok(Self {
                data: data.to_vec(),
                sw: Sw(u16::from_be_bytes([*s1, *s2])),
            }),
            _ => Err(Error::Device(format!(
                "truncated response APDU ({} bytes, no status word)",
                raw.len()
            ))),
        }
    }

    /// A response with data and a status word.
    pub fn new(data: Vec<u8>, sw: Sw) -> Self {
        Self { data, sw }
    }

    /// The encoded response: data then SW1 SW2.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.0.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn c(data: usize, le: Option<usize>) -> Command {
        Command {
            cla: 0x80,
            ins: 0x20,
            p1: 1,
            p2: 2,
            data: (0..data).map(|i| i as u8).collect(),
            le,
        }
    }

    #[test]
    fn short_cases() {
        assert_eq!(c(0, None).encode().unwrap(), [0x80, 0x20, 1, 2]);
        assert_eq!(c(0, Some(256)).encode().unwrap(), [0x80, 0x20, 1, 2, 0]);
        assert_eq!(c(0, Some(16)).encode().unwrap(), [0x80, 0x20, 1, 2, 16]);
        assert_eq!(c(2, None).encode().unwrap(), [0x80, 0x20, 1, 2, 2, 0, 1]);
        assert_eq!(
            c(2, Some(255)).encode().unwrap(),
            [0x80, 0x20, 1, 2, 2, 0, 1, 255]
        );
    }

    #[test]
    fn extended_cases() {
        let e = c(0, Some(65_536)).encode().unwrap();
        assert_eq!(e, [0x80, 0x20, 1, 2, 0, 0, 0]);
        let e = c(300, None).encode().unwrap();
        assert_eq!(&e[..7], [0x80, 0x20, 1, 2, 0, 0x01, 0x2c]);
        assert_eq!(e.len(), 7 + 300);
        let e = c(300, Some(257)).encode().unwrap();
        assert_eq!(&e[e.len() - 2..], [0x01, 0x01]);
        assert!(c(65_536, None).encode().is_err());
        assert!(c(0, Some(0)).encode().is_err());
        assert!(c(0, Some(65_537)).encode().is_err());
        assert!(c(300, None).encode_short().is_err());
    }

    #[test]
    fn decode_round_trips_every_case() {
        for (n, le) in [
            (0, None),
            (0, Some(1)),
            (0, Some(256)),
            (5, None),
            (5, Some(256)),
            (255, Some(7)),
            (256, None),
            (300, Some(65_536)),
            (0, Some(300)),
            (1000, Some(2)),
        ] {
            let cmd = c(n, le);
            let enc = cmd.encode().unwrap();
            let (back, ext) = Command::decode(&enc).unwrap();
            assert_eq!(back, cmd, "{n} {le:?}");
            assert_eq!(ext, !cmd.fits_short());
        }
    }

    #[test]
    fn decode_refuses_malformed_lengths() {
        for bad in [
            &[][..],
            &[0x80, 0x20, 1],
            &[0x80, 0x20, 1, 2, 5, 1, 2],          // Lc 5, 2 bytes
            &[0x80, 0x20, 1, 2, 1, 9, 9, 9],       // trailing bytes
            &[0x80, 0x20, 1, 2, 0, 0x01, 0x00, 5], // extended Lc 256, 1 byte
            &[0x80, 0x20, 1, 2, 0, 0, 0, 0],       // extended Lc 0 with more bytes
        ] {
            assert!(Command::decode(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn chaining_splits_and_marks() {
        let parts = c(600, Some(64)).chain(255).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].cla, 0x90);
        assert_eq!(parts[1].cla, 0x90);
        assert_eq!(parts[2].cla, 0x80);
        assert_eq!(parts[0].le, None);
        assert_eq!(parts[2].le, Some(64));
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.data.clone()).collect();
        assert_eq!(joined, c(600, None).data);
        assert_eq!(c(10, None).chain(255).unwrap().len(), 1);
        assert!(c(10, None).chain(0).is_err());
        let mut chained = c(10, None);
        chained.cla |= CLA_CHAINING;
        assert!(chained.chain(255).is_err());
    }

    #[test]
    fn responses() {
        let r = Response::parse(&[1, 2, 0x90, 0x00]).unwrap();
        assert_eq!(r.data, [1, 2]);
        assert_eq!(r.sw, Sw::OK);
        assert_eq!(r.encode(), [1, 2, 0x90, 0x00]);
        assert!(Response::parse(&[0x90]).is_err());
        assert!(Response::parse(&[]).is_err());
        let secret = Response::new(vec![0x42; 32], Sw(0x6A82));
        assert_eq!(format!("{secret:?}"), "Response(32 bytes, SW 6A82)");
    }
}
