//! The BER-style TLVs of the command set (docs/apdu.md §5): one tag byte, a length of
//! one to four bytes, the value. The reader checks every length against its parent and
//! never panics; the card and the host share it.

use crate::error::{Error, Result};

/// Largest value a TLV may carry (three length bytes).
pub const MAX_LEN: usize = 0xFF_FFFF;

/// Writes TLVs into a buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one TLV.
    pub fn put(&mut self, tag: u8, value: &[u8]) -> &mut Self {
        let n = value.len().min(MAX_LEN);
        self.buf.push(tag);
        match n {
            0..=0x7F => self.buf.push(n as u8),
            0x80..=0xFF => self.buf.extend_from_slice(&[0x81, n as u8]),
            0x100..=0xFFFF => {
                self.buf.push(0x82);
                self.buf.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                self.buf.push(0x83);
                self.buf.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
            }
        }
        self.buf.extend_from_slice(&value[..n]);
        self
    }

    /// Appends a TLV holding a minimal big-endian unsigned integer.
    pub fn put_uint(&mut self, tag: u8, v: u64) -> &mut Self {
        let b = v.to_be_bytes();
        let skip = b.iter().take(7).take_while(|x| **x == 0).count();
        self.put(tag, &b[skip..])
    }

    /// Appends a TLV holding one byte.
    pub fn put_u8(&mut self, tag: u8, v: u8) -> &mut Self {
        self.put(tag, &[v])
    }

    /// Appends a TLV holding a UTF-8 string.
    pub fn put_str(&mut self, tag: u8, s: &str) -> &mut Self {
        self.put(tag, s.as_bytes())
    }

    /// Appends a constructed TLV built by `f`.
    pub fn nest(&mut self, tag: u8, f: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::new();
        f(&mut inner);
        self.put(tag, &inner.buf)
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// One decoded TLV.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag.
    pub tag: u8,
    /// The value.
    pub value: &'a [u8],
}

impl std::fmt::Debug for Tlv<'_> {
    // Values may be PINs or keys: the tag and the length only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tlv({:02X}, {} bytes)", self.tag, self.value.len())
    }
}

fn malformed(why: &str) -> Error {
    Error::invalid_data(format!("malformed TLV: {why}"))
}

/// Splits `buf` into its TLVs, checking every length. Trailing bytes are an error.
pub fn parse(buf: &[u8]) -> Result<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let [tag, after @ ..] = rest {
        let (len, after) = match after {
            [n @ 0..=0x7F, r @ ..] => (usize::from(*n), r),
            [0x81, n, r @ ..] if *n >= 0x80 => (usize::from(*n), r),
            [0x82, a, b, r @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), r),
            [0x83, a, b, c, r @ ..] => (
                usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c),
                r,
            ),
            [] => return Err(malformed("missing length")),
            _ => return Err(malformed("bad or truncated length")),
        };
        let value = after
            .get(..len)
            .ok_or_else(|| malformed("value overruns its parent"))?;
        out.push(Tlv { tag: *tag, value });
        rest = &after[len..];
    }
    Ok(out)
}

/// A parsed TLV list with typed, checked accessors.
pub struct Fields<'a> {
    items: Vec<Tlv<'a>>,
}

impl<'a> Fields<'a> {
    /// Parses `buf`; tags outside `allowed` are refused.
    pub fn parse(buf: &'a [u8], allowed: &[u8]) -> Result<Self> {
        let items = parse(buf)?;
        if let Some(t) = items.iter().find(|t| !allowed.contains(&t.tag)) {
            return Err(malformed(&format!("unexpected tag {:02X}", t.tag)));
        }
        Ok(Self { items })
    }

    /// Every value of `tag`, in order.
    pub fn all(&self, tag: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.items
            .iter()
            .filter(move |t| t.tag == tag)
            .map(|t| t.value)
    }

    /// The only value of `tag`, if present; a repeated tag is an error.
    pub fn opt(&self, tag: u8) -> Result<Option<&'a [u8]>> {
        let mut it = self.all(tag);
        let first = it.next();
        if it.next().is_some() {
            return Err(malformed(&format!("tag {tag:02X} repeated")));
        }
        Ok(first)
    }

    /// The only value of `tag`; absent is an error.
    pub fn get(&self, tag: u8) -> Result<&'a [u8]> {
        self.opt(tag)?
            .ok_or_else(|| malformed(&format!("tag {tag:02X} missing")))
    }

    /// A one-byte value.
    pub fn u8(&self, tag: u8) -> Result<u8> {
        match self.get(tag)? {
            [b] => Ok(*b),
            _ => Err(malformed(&format!("tag {tag:02X} is not one byte"))),
        }
    }

    /// An unsigned integer of at most 8 bytes.
    pub fn uint(&self, tag: u8) -> Result<u64> {
        uint(self.get(tag)?)
    }

    /// A UTF-8 string.
    pub fn str(&self, tag: u8) -> Result<&'a str> {
        std::str::from_utf8(self.get(tag)?)
            .map_err(|_| malformed(&format!("tag {tag:02X} is not UTF-8")))
    }

    /// A boolean byte (`00`/`01`).
    pub fn flag(&self, tag: u8) -> Result<bool> {
        match self.u8(tag)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed(&format!("tag {tag:02X} is not 00 or 01"))),
        }
    }

    /// The TLVs in order.
    pub fn items(&self) -> &[Tlv<'a>] {
        &self.items
    }
}

/// A big-endian unsigned integer of at most 8 bytes.
pub fn uint(v: &[u8]) -> Result<u64> {
    if v.is_empty() || v.len() > 8 {
        return Err(malformed("integer of 0 or more than 8 bytes"));
    }
    Ok(v.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_every_length_form() {
        for n in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000] {
            let v = vec![0xAB; n];
            let mut w = Writer::new();
            w.put(0x07, &v).put_u8(0x04, 1);
            let enc = w.finish();
            let items = parse(&enc).unwrap();
            assert_eq!(items.len(), 2);
            assert_eq!(items[0].value.len(), n);
            assert_eq!(items[1].value, [1]);
        }
    }

    #[test]
    fn integers_and_fields() {
        let mut w = Writer::new();
        w.put_uint(0x03, 0)
            .put_uint(0x13, 0x0102_0304_0506)
            .put_str(0x01, "bidder")
            .nest(0x20, |c| {
                c.put_u8(0x0F, 1);
            });
        let enc = w.finish();
        let f = Fields::parse(&enc, &[0x01, 0x03, 0x13, 0x20]).unwrap();
        assert_eq!(f.uint(0x03).unwrap(), 0);
        assert_eq!(f.uint(0x13).unwrap(), 0x0102_0304_0506);
        assert_eq!(f.str(0x01).unwrap(), "bidder");
        let inner = Fields::parse(f.get(0x20).unwrap(), &[0x0F]).unwrap();
        assert!(inner.flag(0x0F).unwrap());
        assert!(
            Fields::parse(&enc, &[0x01]).is_err(),
            "unknown tags refused"
        );
        assert!(f.get(0x07).is_err());
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        for bad in [
            &[0x01][..],
            &[0x01, 0x05, 1, 2],
            &[0x01, 0x81],
            &[0x01, 0x81, 0x10],       // non-minimal 81 form
            &[0x01, 0x82, 0x00],       // truncated
            &[0x01, 0x84, 0, 0, 0, 1], // four length bytes
            &[0x01, 0x83, 0xFF, 0xFF, 0xFF, 0],
        ] {
            assert!(parse(bad).is_err(), "{bad:02x?}");
        }
        let mut w = Writer::new();
        w.put_u8(0x0F, 1).put_u8(0x0F, 0);
        let enc = w.finish();
        let f = Fields::parse(&enc, &[0x0F]).unwrap();
        assert!(f.flag(0x0F).is_err(), "repeated tag");
        assert!(uint(&[]).is_err());
        assert!(uint(&[1; 9]).is_err());
        // A Debug of a value never shows it.
        let t = Tlv {
            tag: 0x10,
            value: b"123456",
        };
        assert_eq!(format!("{t:?}"), "Tlv(10, 6 bytes)");
    }
}
