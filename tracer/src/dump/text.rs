//! Formatting into a fixed buffer: panic messages and notes without an allocator.

use core::fmt;

/// A `fmt::Write` into a byte slice that keeps whole characters and drops what does
/// not fit.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    truncated: bool,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            buf,
            len: 0,
            truncated: false,
        }
    }

    /// Something did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// What was written.
    pub fn into_str(self) -> &'a str {
        let SliceWriter { buf, len, .. } = self;
        let bytes: &'a [u8] = buf;
        // Only whole `str` prefixes cut at character boundaries were copied.
        core::str::from_utf8(&bytes[..len]).unwrap_or("")
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let (s, cut) = crate::wire::truncate_str(s, room);
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        if cut {
            self.truncated = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn cuts_at_char_boundary() {
        let mut b = [0u8; 5];
        let mut w = SliceWriter::new(&mut b);
        w.write_str("ab").unwrap();
        w.write_str("çé").unwrap();
        assert!(w.truncated());
        assert_eq!(w.into_str(), "abç");
    }
}
