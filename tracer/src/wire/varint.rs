//! LEB128 varints and zigzag, as postcard writes integers: seven bits a byte, least
//! significant first, the high bit set on every byte but the last.

/// The most bytes a `u64` varint takes.
pub const MAX_U64: usize = 10;

/// Writes `v` at `buf[at..]`; returns the new end. The caller leaves `MAX_U64` bytes.
#[inline(always)]
pub fn put(buf: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

/// Reads a `u64` varint at `buf[*at..]`, advancing `at`. `None` on a truncated varint,
/// one longer than 10 bytes, or one that overflows 64 bits.
#[inline]
pub fn get(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..MAX_U64 {
        let b = *buf.get(*at)?;
        *at += 1;
        if i == MAX_U64 - 1 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[inline(always)]
pub const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline(always)]
pub const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 16];
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let n = put(&mut buf, 0, v);
            let mut at = 0;
            assert_eq!(get(&buf[..n], &mut at), Some(v));
            assert_eq!(at, n);
            assert_eq!(get(&buf[..n - 1], &mut 0), None);
            // Postcard agrees.
            assert_eq!(postcard::from_bytes::<u64>(&buf[..n]).unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(get(&[0xff; 11], &mut 0), None);
        assert_eq!(
            get(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                &mut 0
            ),
            None
        );
    }
}
