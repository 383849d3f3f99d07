//! Decoding a dump on the host (`alloc`): every intact record, and a [`Problem`] naming
//! the offset and reason of each damaged region. Never panics, never loops, and never
//! allocates more than a small multiple of the input, whatever its length fields say.
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use clew_tracer::{decode, dump::DumpWriter, clock::ClockInfo};
//! let mut w = DumpWriter::new(Vec::new());
//! w.header("doc", ClockInfo::default(), 0).unwrap();
//! let (bytes, _) = w.finish();
//! let d = decode::decode(&bytes);
//! assert!(d.problems.is_empty());
//! assert_eq!(d.dump.header.unwrap().producer, "doc");
//! # }
//! ```

mod assemble;
mod frames;
mod model;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use frames::{Frames, RawFrame, frames};
pub use model::{
    DecodedEvent, Dump, DumpCause, DumpHeader, DumpModule, DumpSymbol, RingState, StackSegment,
    TaskState,
};

use crate::wire::{self, Record};

/// A damaged or untrusted region of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Offset in the input where the region starts.
    pub offset: usize,
    /// Its length in bytes (0 for problems about the dump as a whole).
    pub len: usize,
    pub reason: Reason,
}

impl Problem {
    pub fn new(offset: usize, len: usize, reason: Reason) -> Problem {
        Problem {
            offset,
            len,
            reason,
        }
    }
}

/// Why a region was not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The input ends inside a frame (no closing delimiter).
    Truncated,
    /// A frame longer than any writer produces ([`wire::MAX_FRAME`]): not decoded.
    FrameTooLong,
    /// Not valid COBS at input offset `at`.
    Cobs { at: usize },
    /// Too short to hold a record and its CRC.
    TooShort,
    /// The CRC does not match: the frame is damaged.
    Crc { stored: u32, computed: u32 },
    /// A kind of record this decoder does not know (written by a newer version): skipped.
    UnknownRecord { kind: u64 },
    /// The CRC matched but the record does not decode.
    BadRecord(String),
    /// A header with the wrong magic bytes.
    BadMagic,
    /// A format major version this decoder does not read: the rest is not decoded.
    UnsupportedVersion { major: u16, minor: u16 },
    /// A second header: what follows belongs to another dump and is not decoded.
    SecondHeader,
    /// Frames after the end record (e.g. an older dump's remains): not decoded.
    AfterEnd,
    /// No header record was found.
    MissingHeader,
    /// No end record: the dump was cut short (or its end record was damaged).
    MissingEnd,
    /// The end record counts more records than were intact.
    RecordsLost { written: u32, intact: u32 },
    /// The packed contents of a record (events, symbols) stop making sense at byte `at`
    /// of its data; what came before was kept.
    BadContents { what: &'static str, at: usize },
    /// Records contradict each other or miss parts (a chunk of an unknown module, an
    /// incomplete `.eh_frame`, a stack hole).
    Inconsistent(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Truncated => write!(f, "input ends inside a frame (dump cut short)"),
            Reason::FrameTooLong => write!(f, "frame longer than {} bytes", wire::MAX_FRAME),
            Reason::Cobs { at } => write!(f, "invalid COBS framing at offset {at}"),
            Reason::TooShort => write!(f, "frame too short for a record and its CRC"),
            Reason::Crc { stored, computed } => {
                write!(
                    f,
                    "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Reason::UnknownRecord { kind } => write!(f, "unknown record kind {kind} (skipped)"),
            Reason::BadRecord(e) => write!(f, "CRC matches but the record does not decode: {e}"),
            Reason::BadMagic => write!(f, "header with wrong magic bytes"),
            Reason::UnsupportedVersion { major, minor } => write!(
                f,
                "format version {major}.{minor} not supported (this decoder reads {}.x): rest not decoded",
                wire::VERSION_MAJOR
            ),
            Reason::SecondHeader => {
                write!(
                    f,
                    "a second dump header: the rest belongs to another dump, not decoded"
                )
            }
            Reason::AfterEnd => write!(f, "data after the end record: not decoded"),
            Reason::MissingHeader => write!(f, "no header record"),
            Reason::MissingEnd => write!(f, "no end record: the dump is incomplete"),
            Reason::RecordsLost { written, intact } => write!(
                f,
                "{} of {written} records written before the end record are missing",
                written.saturating_sub(*intact)
            ),
            Reason::BadContents { what, at } => {
                write!(
                    f,
                    "{what} data undecodable from byte {at} of the record's data"
                )
            }
            Reason::Inconsistent(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len > 0 {
            write!(
                f,
                "offset {} (+{} bytes): {}",
                self.offset, self.len, self.reason
            )
        } else {
            write!(f, "offset {}: {}", self.offset, self.reason)
        }
    }
}

/// A decoded dump and the problems met.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub dump: Dump,
    pub problems: Vec<Problem>,
}

/// Reads a record from a frame's payload: `Err` for an unknown kind or a bad encoding.
/// Trailing bytes (fields of a newer minor version) are ignored.
pub fn parse_record(payload: &[u8]) -> Result<Record<'_>, Reason> {
    let mut at = 0;
    let kind = wire::varint::get(payload, &mut at)
        .ok_or_else(|| Reason::BadRecord(String::from("no record kind")))?;
    if kind >= Record::KINDS {
        return Err(Reason::UnknownRecord { kind });
    }
    postcard::take_from_bytes::<Record<'_>>(payload)
        .map(|(r, _rest)| r)
        .map_err(|e| Reason::BadRecord(alloc::format!("{e}")))
}

/// Decodes a dump: see the [module docs](self).
pub fn decode(input: &[u8]) -> Decoded {
    let mut b = assemble::Builder::default();
    let mut problems = Vec::new();
    let mut intact = 0u32;
    let mut end_at = None;
    let mut seen_header = false;
    for f in frames(input) {
        let f = match f {
            Ok(f) => f,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let at = |reason| Problem::new(f.offset, f.len, reason);
        if end_at.is_some() {
            problems.push(Problem::new(
                f.offset,
                input.len() - f.offset,
                Reason::AfterEnd,
            ));
            break;
        }
        let rec = match parse_record(&f.payload) {
            Ok(r) => r,
            Err(reason) => {
                problems.push(at(reason));
                continue;
            }
        };
        if let Record::Header(h) = &rec {
            if seen_header {
                problems.push(Problem::new(
                    f.offset,
                    input.len() - f.offset,
                    Reason::SecondHeader,
                ));
                break;
            }
            seen_header = true;
            if h.magic != wire::MAGIC {
                problems.push(at(Reason::BadMagic));
            }
            if h.major != wire::VERSION_MAJOR {
                problems.push(Problem::new(
                    f.offset,
                    input.len() - f.offset,
                    Reason::UnsupportedVersion {
                        major: h.major,
                        minor: h.minor,
                    },
                ));
                break;
            }
        }
        if let Record::End(e) = &rec {
            end_at = Some(f.offset);
            if e.records > intact {
                problems.push(Problem::new(
                    f.offset,
                    0,
                    Reason::RecordsLost {
                        written: e.records,
                        intact,
                    },
                ));
            }
        }
        intact += 1;
        if let Err(reason) = b.add(rec) {
            problems.push(at(reason));
        }
    }
    if !seen_header {
        problems.push(Problem::new(0, 0, Reason::MissingHeader));
    }
    if end_at.is_none() {
        problems.push(Problem::new(input.len(), 0, Reason::MissingEnd));
    }
    let (mut dump, more) = b.finish();
    dump.records = intact;
    problems.extend(more.into_iter().map(|r| Problem::new(0, 0, r)));
    Decoded { dump, problems }
}
