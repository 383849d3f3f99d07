//! Framing: a record's postcard bytes, then their CRC-32 (IEEE, little-endian), COBS
//! encoded, between two zero bytes: `00 cobs(payload ‖ crc) 00`. Each frame owns both
//! delimiters, so damage confined to one frame never costs its neighbours.

pub mod cobs;

use crate::wire::MAX_PAYLOAD;

/// The largest frame this crate writes.
pub const MAX_WRITTEN_FRAME: usize = cobs::max_encoded_len(MAX_PAYLOAD + 4) + 2;

/// Frames `payload[..len]` into `out`: appends the CRC in `payload[len..len + 4]`, COBS
/// encodes between delimiters. Returns the frame's length.
#[inline]
pub fn encode(payload: &mut [u8], len: usize, out: &mut [u8]) -> usize {
    let crc = crc32fast::hash(&payload[..len]);
    payload[len..len + 4].copy_from_slice(&crc.to_le_bytes());
    out[0] = 0;
    let n = cobs::encode(&payload[..len + 4], &mut out[1..]);
    out[n + 1] = 0;
    n + 2
}
