//! Splitting input into frames: runs of non-zero bytes between zero delimiters, COBS
//! decoded and CRC-checked. Damage costs only the frames it touches: the next zero byte
//! starts afresh.

use alloc::vec::Vec;

use super::{Problem, Reason};
use crate::frame::cobs;
use crate::wire::MAX_FRAME;

/// A frame whose CRC matched: where it is in the input and its record bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// Offset of the frame's first byte after its leading delimiter.
    pub offset: usize,
    /// Encoded length (without delimiters).
    pub len: usize,
    /// The postcard record (CRC removed).
    pub payload: Vec<u8>,
}

/// The frames of `input`, in order: intact ones and a [`Problem`] for each damaged one.
pub fn frames(input: &[u8]) -> Frames<'_> {
    Frames { input, at: 0 }
}

/// Iterator of [`frames`].
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    input: &'a [u8],
    at: usize,
}

impl Iterator for Frames<'_> {
    type Item = Result<RawFrame, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        // Skip delimiters.
        let rest = self.input.get(self.at..)?;
        let start = self.at + rest.iter().position(|&b| b != 0)?;
        let run = &self.input[start..];
        let (len, terminated) = match run.iter().position(|&b| b == 0) {
            Some(n) => (n, true),
            None => (run.len(), false),
        };
        self.at = start + len;
        let problem = |reason| Some(Err(Problem::new(start, len, reason)));
        if !terminated {
            return problem(Reason::Truncated);
        }
        if len > MAX_FRAME {
            return problem(Reason::FrameTooLong);
        }
        let mut payload = Vec::with_capacity(len);
        if let Err(e) = cobs::decode(&run[..len], &mut payload) {
            let at = match e {
                cobs::CobsError::Zero(a) | cobs::CobsError::Overrun(a) => start + a,
            };
            return problem(Reason::Cobs { at });
        }
        if payload.len() < 5 {
            return problem(Reason::TooShort);
        }
        let body = payload.len() - 4;
        let stored = u32::from_le_bytes(payload[body..].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&payload[..body]);
        if stored != computed {
            return problem(Reason::Crc { stored, computed });
        }
        payload.truncate(body);
        Some(Ok(RawFrame {
            offset: start,
            len,
            payload,
        }))
    }
}
