//! Streaming PEM (RFC 7468) for envelopes of any size: a reader that decodes line by line
//! and a writer that encodes as it goes, both in constant memory.

use std::io::{self, BufRead, Read, Write};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Decodes the body of one PEM block from a reader positioned after its `-----BEGIN`
/// line. Data after the `-----END` line other than whitespace is an error.
pub(crate) struct PemReader<R> {
    r: R,
    /// Base64 characters carried over from the previous line (fewer than 4).
    carry: Vec<u8>,
    /// Decoded bytes not yet returned.
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
    padded: bool,
    line: Vec<u8>,
    /// The next read starts a new line (long lines are read in pieces).
    at_line_start: bool,
}

/// The most read at once from one line, so that a PEM file without line breaks is still
/// decoded in constant memory.
const MAX_PIECE: u64 = 64 * 1024;

impl<R: BufRead> PemReader<R> {
    /// Reads up to and including the `-----BEGIN <label>-----` line and returns the
    /// label with the reader.
    pub(crate) fn new(mut r: R) -> io::Result<(String, Self)> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                return Err(bad("no PEM BEGIN line"));
            }
            let t = line.trim_ascii();
            if t.is_empty() {
                continue;
            }
            let label = t
                .strip_prefix(b"-----BEGIN ")
                .and_then(|s| s.strip_suffix(b"-----"))
                .ok_or_else(|| bad("input is neither DER nor PEM"))?;
            let label = String::from_utf8_lossy(label).into_owned();
            return Ok((
                label,
                Self {
                    r,
                    carry: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    done: false,
                    padded: false,
                    line: Vec::new(),
                    at_line_start: true,
                },
            ));
        }
    }

    fn decode_quad(&mut self, q: [u8; 4]) -> io::Result<()> {
        if self.padded {
            return Err(bad("PEM: base64 continues after padding"));
        }
        let pad = q.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 {
            return Err(bad("PEM: bad base64 padding"));
        }
        let mut v: u32 = 0;
        for (i, c) in q.iter().enumerate() {
            let s = if i >= 4 - pad {
                0
            } else {
                sextet(*c).ok_or_else(|| bad("PEM: not base64"))?
            };
            v = (v << 6) | u32::from(s);
        }
        let b = v.to_be_bytes();
        self.out.extend_from_slice(&b[1..4 - pad]);
        if pad > 0 {
            self.padded = true;
        }
        Ok(())
    }

    /// Decodes the next line (or the next [`MAX_PIECE`] bytes of a long one) into `out`.
    /// Returns false at the end of the block.
    fn next_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        let n = (&mut self.r)
            .take(MAX_PIECE)
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "PEM truncated: no END line",
            ));
        }
        let line = std::mem::take(&mut self.line);
        let at_line_start = self.at_line_start;
        self.at_line_start = line.last() == Some(&b'\n');
        let t = line.trim_ascii();
        if at_line_start && t.starts_with(b"-----END ") {
            if !self.carry.is_empty() {
                return Err(bad("PEM: base64 length is not a multiple of 4"));
            }
            // Only whitespace may follow.
            let mut rest = [0u8; 512];
            loop {
                let n = self.r.read(&mut rest)?;
                if n == 0 {
                    break;
                }
                if !rest[..n].iter().all(u8::is_ascii_whitespace) {
                    return Err(bad("trailing data after the PEM END line"));
                }
            }
            self.line = line;
            return Ok(false);
        }
        for c in t.iter().copied().filter(|c| !c.is_ascii_whitespace()) {
            self.carry.push(c);
            if self.carry.len() == 4 {
                let q = [self.carry[0], self.carry[1], self.carry[2], self.carry[3]];
                self.carry.clear();
                self.decode_quad(q)?;
            }
        }
        self.line = line;
        Ok(true)
    }
}

impl<R: BufRead> Read for PemReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.out.clear();
            self.out_pos = 0;
            if !self.next_line()? {
                self.done = true;
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Encodes bytes as one PEM block, 64 characters a line.
pub(crate) struct PemWriter<W: Write> {
    w: W,
    label: String,
    pending: Vec<u8>,
    line: Vec<u8>,
}

impl<W: Write> PemWriter<W> {
    /// Writes the BEGIN line.
    pub(crate) fn new(mut w: W, label: &str) -> io::Result<Self> {
        writeln!(w, "-----BEGIN {label}-----")?;
        Ok(Self {
            w,
            label: label.to_owned(),
            pending: Vec::with_capacity(48),
            line: Vec::with_capacity(65),
        })
    }

    fn encode_line(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.line.clear();
        for g in chunk.chunks(3) {
            let b = [g[0], *g.get(1).unwrap_or(&0), *g.get(2).unwrap_or(&0)];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= g.len() {
                    self.line
                        .push(ALPHABET[((v >> (18 - 6 * i)) & 0x3F) as usize]);
                } else {
                    self.line.push(b'=');
                }
            }
        }
        self.line.push(b'\n');
        self.w.write_all(&self.line)
    }

    /// Writes the rest and the END line; returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            self.encode_line(&p)?;
        }
        writeln!(self.w, "-----END {}-----", self.label)?;
        Ok(self.w)
    }
}

impl<W: Write> Write for PemWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let take = (48 - self.pending.len()).min(buf.len());
            self.pending.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.pending.len() == 48 {
                let p = std::mem::take(&mut self.pending);
                self.encode_line(&p)?;
                self.pending = p;
                self.pending.clear();
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        let mut w = PemWriter::new(Vec::new(), "CMS").unwrap();
        w.write_all(data).unwrap();
        let text = w.finish().unwrap();
        // pem-rfc7468 agrees with the encoding (it refuses an empty body).
        if !data.is_empty() {
            let (label, der) = pem_rfc7468::decode_vec(&text).unwrap();
            assert_eq!(label, "CMS");
            assert_eq!(der, data);
        }
        let (label, mut r) = PemReader::new(&text[..]).unwrap();
        assert_eq!(label, "CMS");
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn pem_round_trips() {
        for n in [0usize, 1, 2, 3, 47, 48, 49, 100, 1000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            round_trip(&data);
        }
    }

    #[test]
    fn pem_errors() {
        let read = |t: &[u8]| -> io::Result<Vec<u8>> {
            let (_, mut r) = PemReader::new(t)?;
            let mut v = Vec::new();
            r.read_to_end(&mut v)?;
            Ok(v)
        };
        assert!(read(b"-----BEGIN CMS-----\nAAAA\n").is_err());
        assert!(read(b"-----BEGIN CMS-----\nAA!A\n-----END CMS-----\n").is_err());
        assert!(read(b"-----BEGIN CMS-----\nAAA\n-----END CMS-----\n").is_err());
        assert!(read(b"-----BEGIN CMS-----\nAA==AAAA\n-----END CMS-----\n").is_err());
        assert!(read(b"-----BEGIN CMS-----\nAAAA\n-----END CMS-----\nxx").is_err());
        assert_eq!(
            read(b"\n-----BEGIN CMS-----\nAAE=\n-----END CMS-----\n\n").unwrap(),
            vec![0, 1]
        );
        assert!(read(b"hello").is_err());
        // One long line (no line breaks) decodes in pieces.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
        let mut w = PemWriter::new(Vec::new(), "CMS").unwrap();
        w.write_all(&data).unwrap();
        let text = w.finish().unwrap();
        let text = String::from_utf8(text).unwrap();
        let mut lines = text.lines();
        let begin = lines.next().unwrap();
        let body: Vec<&str> = lines
            .clone()
            .take_while(|l| !l.starts_with("-----"))
            .collect();
        let one = format!("{begin}\n{}\n-----END CMS-----\n", body.concat());
        assert_eq!(read(one.as_bytes()).unwrap(), data);
    }
}
