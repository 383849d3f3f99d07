//! Consistent Overhead Byte Stuffing: removes every zero byte from a frame so that zero
//! can delimit frames. Each block is a code byte `c` (1..=255) and `c - 1` data bytes;
//! a block with `c < 255` stands for its data and a zero, except the last block.

/// The most bytes encoding `len` bytes takes.
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `src` into `dst` (at least [`max_encoded_len`] long); returns the length.
#[inline]
pub fn encode(src: &[u8], dst: &mut [u8]) -> usize {
    let mut out = 0;
    for seg in src.split(|&b| b == 0) {
        let mut s = seg;
        while s.len() >= 254 {
            dst[out] = 0xff;
            dst[out + 1..out + 255].copy_from_slice(&s[..254]);
            out += 255;
            s = &s[254..];
        }
        dst[out] = s.len() as u8 + 1;
        dst[out + 1..out + 1 + s.len()].copy_from_slice(s);
        out += 1 + s.len();
    }
    out
}

/// Why a frame is not valid COBS, at which offset of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CobsError {
    /// A zero byte inside a frame.
    Zero(usize),
    /// A block runs past the end of the frame.
    Overrun(usize),
}

/// Decodes the frame `src` (no delimiters) into `dst`, which it clears first; never
/// writes more than `src.len()` bytes.
#[cfg(feature = "alloc")]
pub fn decode(src: &[u8], dst: &mut alloc::vec::Vec<u8>) -> Result<(), CobsError> {
    dst.clear();
    let mut at = 0;
    while at < src.len() {
        let c = src[at] as usize;
        if c == 0 {
            return Err(CobsError::Zero(at));
        }
        let data = src.get(at + 1..at + c).ok_or(CobsError::Overrun(at))?;
        if let Some(z) = data.iter().position(|&b| b == 0) {
            return Err(CobsError::Zero(at + 1 + z));
        }
        dst.extend_from_slice(data);
        at += c;
        if c != 0xff && at < src.len() {
            dst.push(0);
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn rt(src: &[u8]) {
        let mut enc = vec![0u8; max_encoded_len(src.len())];
        let n = encode(src, &mut enc);
        assert!(!enc[..n].contains(&0));
        let mut out = Vec::new();
        decode(&enc[..n], &mut out).unwrap();
        assert_eq!(out, src);
        // Interoperates with the `cobs` crate both ways.
        let mut other = vec![0u8; src.len() + 1];
        let m = cobs::decode(&enc[..n], &mut other).unwrap();
        assert_eq!(&other[..m], src);
        let theirs = cobs::encode_vec(src);
        decode(&theirs, &mut out).unwrap();
        assert_eq!(out, src);
    }

    #[test]
    fn edges() {
        rt(&[]);
        rt(&[0]);
        rt(&[0, 0]);
        rt(&[1]);
        rt(&[1, 0, 2]);
        for len in [253, 254, 255, 508, 509, 600] {
            let v: Vec<u8> = (0..len).map(|i| (i % 255 + 1) as u8).collect();
            rt(&v);
            let mut z = v.clone();
            z.push(0);
            rt(&z);
            let mut z = v.clone();
            z.insert(0, 0);
            rt(&z);
        }
        assert_eq!(decode(&[3, 1], &mut Vec::new()), Err(CobsError::Overrun(0)));
        assert_eq!(decode(&[3, 0, 1], &mut Vec::new()), Err(CobsError::Zero(1)));
    }
}
