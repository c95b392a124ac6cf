//! A streaming BER reader for the EnvelopedData outline: headers with definite or
//! indefinite lengths, small elements read whole, the encrypted content streamed.
//!
//! Every definite length is checked against the lengths of the elements around it, so a
//! truncated, shortened or lengthened envelope is a clear error, never a silent
//! misreading. Only low tag numbers occur in CMS; others are refused.

use std::io::{BufRead, ErrorKind};

use crate::error::{Error, Result};

/// Tag of an OCTET STRING (primitive).
pub(crate) const OCTET_STRING: u8 = 0x04;
/// Tag of a constructed OCTET STRING (BER segments).
pub(crate) const OCTET_STRING_CONS: u8 = 0x24;
/// Tag of an OBJECT IDENTIFIER.
pub(crate) const OID: u8 = 0x06;
/// Tag of an INTEGER.
pub(crate) const INTEGER: u8 = 0x02;
/// Tag of a SEQUENCE.
pub(crate) const SEQUENCE: u8 = 0x30;
/// Tag of a SET.
pub(crate) const SET: u8 = 0x31;

/// One element header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub tag: u8,
    /// `None`: indefinite length, ended by 00 00.
    pub len: Option<u64>,
    /// Bytes of the header itself.
    pub header_len: u64,
}

/// An open constructed element: where it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    end: Option<u64>,
}

pub(crate) struct BerReader<R> {
    r: R,
    pos: u64,
    /// Ends of the open definite-length elements, innermost last.
    limits: Vec<u64>,
}

pub(crate) fn truncated() -> Error {
    Error::invalid_data("envelope truncated: the input ends inside the EnvelopedData")
}

impl<R: BufRead> BerReader<R> {
    pub(crate) fn new(r: R) -> Self {
        Self {
            r,
            pos: 0,
            limits: Vec::new(),
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    fn limit(&self) -> Option<u64> {
        self.limits.iter().copied().min()
    }

    /// Checks that `n` more bytes stay inside every open definite element.
    fn check_room(&self, n: u64) -> Result<()> {
        if let Some(l) = self.limit()
            && self.pos.checked_add(n).is_none_or(|e| e > l)
        {
            return Err(Error::invalid_data(format!(
                "envelope damaged: an element at byte {} runs past the end of the element holding it",
                self.pos
            )));
        }
        Ok(())
    }

    /// The next bytes without consuming them (at most what is buffered; empty at EOF).
    fn peek(&mut self) -> Result<&[u8]> {
        loop {
            match self.r.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        // Buffered now: this second call returns at once.
        self.r.fill_buf().map_err(io_err)
    }

    /// The next tag byte, `None` at end of input.
    pub(crate) fn peek_tag(&mut self) -> Result<Option<u8>> {
        Ok(self.peek()?.first().copied())
    }

    /// Whether the input is exhausted.
    pub(crate) fn at_eof(&mut self) -> Result<bool> {
        Ok(self.peek()?.is_empty())
    }

    /// Reads exactly `buf.len()` bytes.
    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.check_room(buf.len() as u64)?;
        let mut done = 0;
        while done < buf.len() {
            let avail = self.peek()?;
            if avail.is_empty() {
                return Err(truncated());
            }
            let n = avail.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&avail[..n]);
            self.r.consume(n);
            done += n;
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    /// Reads a header.
    pub(crate) fn header(&mut self) -> Result<Header> {
        let start = self.pos;
        let tag = self.byte()?;
        if tag & 0x1F == 0x1F {
            return Err(Error::invalid_data(format!(
                "envelope damaged: unexpected high tag number at byte {start}"
            )));
        }
        let first = self.byte()?;
        let len = match first {
            0x80 => {
                if tag & 0x20 == 0 {
                    return Err(Error::invalid_data(format!(
                        "envelope damaged: indefinite length on a primitive element at byte {start}"
                    )));
                }
                None
            }
            0x00..=0x7F => Some(u64::from(first)),
            0xFF => {
                return Err(Error::invalid_data(format!(
                    "envelope damaged: reserved length byte at byte {start}"
                )));
            }
            _ => {
                let n = usize::from(first & 0x7F);
                if n > 8 {
                    return Err(Error::invalid_data(format!(
                        "envelope damaged: length of {n} bytes at byte {start}"
                    )));
                }
                let mut v: u64 = 0;
                for _ in 0..n {
                    v = (v << 8) | u64::from(self.byte()?);
                }
                Some(v)
            }
        };
        let header_len = self.pos - start;
        if let Some(l) = len {
            self.check_room(l)?;
        }
        Ok(Header {
            tag,
            len,
            header_len,
        })
    }

    /// Reads a header and checks its tag.
    pub(crate) fn expect(&mut self, tag: u8, what: &str) -> Result<Header> {
        let at = self.pos;
        let h = self.header()?;
        if h.tag != tag {
            return Err(Error::invalid_data(format!(
                "not a valid EnvelopedData: expected {what} (tag {tag:#04x}) at byte {at}, found tag {:#04x}",
                h.tag
            )));
        }
        Ok(h)
    }

    /// Opens a constructed element with this tag.
    pub(crate) fn open(&mut self, tag: u8, what: &str) -> Result<Frame> {
        let h = self.expect(tag, what)?;
        self.enter(h)
    }

    /// Enters a constructed element whose header was read. A definite length that would
    /// end past 2^64 − 1 bytes (outside any element, where `header` has no end to check
    /// it against) is refused.
    pub(crate) fn enter(&mut self, h: Header) -> Result<Frame> {
        let end = match h.len {
            Some(l) => Some(self.pos.checked_add(l).ok_or_else(|| {
                Error::invalid_data(format!(
                    "envelope damaged: the element at byte {} claims {l} bytes",
                    self.pos - h.header_len
                ))
            })?),
            None => None,
        };
        if let Some(e) = end {
            self.limits.push(e);
        }
        Ok(Frame { end })
    }

    /// Whether the element of `f` has no more content. For an indefinite element the
    /// end-of-contents octets are consumed when found.
    pub(crate) fn at_end(&mut self, f: &Frame) -> Result<bool> {
        match f.end {
            Some(e) => Ok(self.pos >= e),
            None => {
                let b = self.peek()?;
                if b.is_empty() {
                    return Err(truncated());
                }
                if b[0] != 0x00 {
                    return Ok(false);
                }
                let h = self.header()?;
                if h.len != Some(0) {
                    return Err(Error::invalid_data(format!(
                        "envelope damaged: bad end-of-contents at byte {}",
                        self.pos - h.header_len
                    )));
                }
                Ok(true)
            }
        }
    }

    /// Closes the element of `f`: it must have no content left.
    pub(crate) fn close(&mut self, f: Frame, what: &str) -> Result<()> {
        if !self.at_end(&f)? {
            return Err(Error::invalid_data(format!(
                "envelope damaged: unexpected data at byte {} inside the {what}",
                self.pos
            )));
        }
        self.ended(f, what)
    }

    /// Leaves the element of `f` after [`BerReader::at_end`] said it has ended (which
    /// consumed the end-of-contents of an indefinite element).
    pub(crate) fn ended(&mut self, f: Frame, what: &str) -> Result<()> {
        if let Some(e) = f.end {
            if self.pos != e {
                return Err(Error::invalid_data(format!(
                    "envelope damaged: the {what} ends at byte {} but its length says {e}",
                    self.pos
                )));
            }
            if let Some(i) = self.limits.iter().rposition(|l| *l == e) {
                self.limits.remove(i);
            }
        }
        Ok(())
    }

    /// Reads the value of a definite-length element of at most `max` bytes.
    pub(crate) fn value(&mut self, h: Header, max: usize, what: &str) -> Result<Vec<u8>> {
        let len = h.len.ok_or_else(|| {
            Error::invalid_data(format!("{what}: indefinite length is not supported here"))
        })?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| {
                Error::invalid_data(format!(
                    "{what}: {len} bytes is more than the {max} allowed"
                ))
            })?;
        let mut v = vec![0u8; len];
        self.read_exact(&mut v)?;
        Ok(v)
    }

    /// Reads a whole definite-length element with this tag (header included), at most
    /// `max` bytes of value, for decoding with `der`.
    pub(crate) fn tlv(&mut self, tag: u8, max: usize, what: &str) -> Result<Vec<u8>> {
        let h = self.expect(tag, what)?;
        self.tlv_after(h, max, what)
    }

    /// The whole element of an already read header.
    pub(crate) fn tlv_after(&mut self, h: Header, max: usize, what: &str) -> Result<Vec<u8>> {
        let value = self.value(h, max, what)?;
        let mut out = Vec::with_capacity(value.len() + 10);
        out.push(h.tag);
        push_len(&mut out, value.len() as u64);
        out.extend_from_slice(&value);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 4096];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Skips one element of any form.
    pub(crate) fn skip_element(&mut self) -> Result<()> {
        let h = self.header()?;
        match h.len {
            Some(l) => self.skip(l),
            None => {
                let f = self.enter(h)?;
                while !self.at_end(&f)? {
                    self.skip_element()?;
                }
                self.ended(f, "element")
            }
        }
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::invalid_data(format!("reading the envelope: {e}"))
}

/// Appends a DER length.
pub(crate) fn push_len(out: &mut Vec<u8>, len: u64) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER header for a definite length.
pub(crate) fn header_bytes(tag: u8, len: u64) -> Vec<u8> {
    let mut v = vec![tag];
    push_len(&mut v, len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0u64, 1, 127, 128, 255, 256, 65535, 65536, 1 << 32, u64::MAX] {
            let mut v = header_bytes(0x04, len);
            v.push(0xAA);
            let mut r = BerReader::new(&v[..]);
            let h = r.header().unwrap();
            assert_eq!(h.tag, 0x04);
            assert_eq!(h.len, Some(len));
            assert_eq!(h.header_len as usize, v.len() - 1);
        }
    }

    #[test]
    fn nested_lengths_are_checked() {
        // SEQUENCE of 3 holding an OCTET STRING that claims 5 bytes.
        let v = [0x30, 0x03, 0x04, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05];
        let mut r = BerReader::new(&v[..]);
        r.open(SEQUENCE, "outer").unwrap();
        let e = r.header().unwrap_err();
        assert!(e.to_string().contains("runs past"), "{e}");
        // Truncated input.
        let v = [0x30, 0x80, 0x04, 0x02, 0x01];
        let mut r = BerReader::new(&v[..]);
        let f = r.open(SEQUENCE, "outer").unwrap();
        assert!(!r.at_end(&f).unwrap());
        let h = r.header().unwrap();
        assert!(
            r.value(h, 10, "x")
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
    }

    /// A constructed element whose length would end past 2^64 − 1 (found by the `cms`
    /// fuzz target: it overflowed the end's addition) is refused, not entered.
    #[test]
    fn a_length_past_the_largest_offset_is_refused() {
        let mut v = vec![0x30, 0x88];
        v.extend_from_slice(&[0xFF; 8]);
        v.extend_from_slice(&[0x04, 0x00]);
        let mut r = BerReader::new(&v[..]);
        let e = r.open(SEQUENCE, "outer").unwrap_err();
        assert!(e.to_string().contains("claims"), "{e}");
    }

    #[test]
    fn indefinite_and_skip() {
        let v = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00,
        ];
        let mut r = BerReader::new(&v[..]);
        r.skip_element().unwrap();
        assert!(r.at_eof().unwrap());
        // A primitive element may not be indefinite.
        let v = [0x04, 0x80];
        assert!(BerReader::new(&v[..]).header().is_err());
    }
}
