//! The card driver against a hostile card: the input is a sequence of responses
//! (`[u16 big-endian length][bytes]` blocks, the way OpenSC's fake reader feeds its
//! fuzzers) that a scripted transport answers in order, whatever was asked. The APDU
//! plumbing (GET RESPONSE, 6Cxx, length checks), the secure-channel handshake and every
//! parser of card answers must refuse garbage without panicking or over-reading.
#![no_main]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use token_hal::apdu::command::Command;
use token_hal::apdu::driver::ApduDevice;
use token_hal::apdu::exchange::{LinkCaps, exchange};
use token_hal::apdu::tlv;
use token_hal::apdu::transport::{Transaction, Transport};
use token_hal::apdu::wire;
use token_hal::{Device, Error, Result};

struct Scripted(Mutex<VecDeque<Vec<u8>>>);
struct NoHold;
impl Transaction for NoHold {}

impl Transport for Scripted {
    fn id(&self) -> String {
        "fuzz".into()
    }
    fn atr(&self) -> Option<Vec<u8>> {
        None
    }
    fn transmit(&self, _apdu: &[u8]) -> Result<Vec<u8>> {
        self.0
            .lock()
            .map_err(|_| Error::DeviceRemoved)?
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

fn blocks(mut data: &[u8]) -> VecDeque<Vec<u8>> {
    let mut out = VecDeque::new();
    while let [a, b, rest @ ..] = data {
        let n = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
        out.push_back(rest[..n].to_vec());
        data = &rest[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let script = blocks(data);
    // Every parser a card answer reaches.
    for b in &script {
        let _ = tlv::parse(b);
        let _ = wire::container(b);
        let _ = wire::device_info(b);
        let _ = wire::file_info(b);
        let _ = wire::pin_info(b);
        let _ = wire::sign_mech(b);
        let _ = wire::dec_mech(b);
        let _ = wire::derive_mech(b);
    }
    // The plumbing, over both link kinds.
    for caps in [LinkCaps::SHORT, LinkCaps::EXTENDED] {
        let t = Scripted(Mutex::new(script.clone()));
        let cmd = Command::new(0x80, 0x40, 0, 0)
            .with_data(vec![0; 300])
            .with_le(512);
        if let Ok(r) = exchange(&t, caps, &cmd) {
            assert!(r.data.len() <= 512);
        }
    }
    // The driver end to end (select, handshake, then whatever follows).
    let dev = ApduDevice::new(
        Arc::new(Scripted(Mutex::new(script))),
        LinkCaps::SHORT,
        None,
    );
    let _ = dev.info();
    let _ = dev.list_apps();
});
