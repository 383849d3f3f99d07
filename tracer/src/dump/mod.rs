//! Writing a post-mortem dump at panic or trap time: [`DumpWriter`] turns the header,
//! the cause, the module map, each task's registers, stack and backtrace, and the rings'
//! events into framed records (see [`crate::frame`], `FORMAT.md`) on a [`Sink`].
//!
//! Nothing here allocates: records are encoded into the writer's own buffers (about
//! 3 KiB, inside the `DumpWriter`: keep one in a `static` if the panic stack is small).
//! Call the parts in any order after [`DumpWriter::header`]; end with
//! [`DumpWriter::finish`].

mod events;
mod modules;
mod task;
mod text;

#[cfg(all(feature = "std", target_os = "linux", target_arch = "x86_64"))]
pub mod host;

use core::panic::Location;

use crate::clock::ClockInfo;
use crate::frame;
use crate::sink::{Sink, SinkError};
use crate::wire::{
    self, Cause, EndRecord, Header, MAX_MESSAGE, MAX_NAME, MAX_PAYLOAD, Record, TrapKind,
    truncate_str,
};

pub use modules::{BuildIdFn, EhFramePolicy, ModuleOptions};
pub use text::SliceWriter;

/// The largest blob (stack bytes, `.eh_frame` bytes, packed events or symbols) one
/// record carries: what fits in [`MAX_PAYLOAD`] with the record's other fields.
pub const CHUNK: usize = 960;

/// Why writing a record failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpError {
    Sink(SinkError),
    /// A record did not fit [`MAX_PAYLOAD`] (a bug in this crate).
    Encode,
}

impl From<SinkError> for DumpError {
    fn from(e: SinkError) -> Self {
        DumpError::Sink(e)
    }
}

impl core::fmt::Display for DumpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DumpError::Sink(e) => e.fmt(f),
            DumpError::Encode => f.write_str("dump record too large"),
        }
    }
}

/// What a finished dump holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records written, the end record included.
    pub records: u32,
    pub events: u64,
    /// Bytes handed to the sink.
    pub bytes: u64,
    /// The first error a sink reported (later records were still tried).
    pub error: Option<DumpError>,
}

/// Encodes and frames records onto the sink.
struct Out<S: Sink> {
    sink: S,
    payload: [u8; MAX_PAYLOAD + 4],
    frame: [u8; frame::MAX_WRITTEN_FRAME],
    records: u32,
    bytes: u64,
    first_error: Option<DumpError>,
}

impl<S: Sink> Out<S> {
    #[inline]
    fn put(&mut self, rec: &Record<'_>) -> Result<(), DumpError> {
        let r = self.put_inner(rec);
        if let Err(e) = r {
            self.first_error.get_or_insert(e);
        }
        r
    }

    #[inline]
    fn put_inner(&mut self, rec: &Record<'_>) -> Result<(), DumpError> {
        let len = postcard::to_slice(rec, &mut self.payload[..MAX_PAYLOAD])
            .map_err(|_| DumpError::Encode)?
            .len();
        let n = frame::encode(&mut self.payload, len, &mut self.frame);
        self.records += 1;
        self.bytes += n as u64;
        self.sink.write(&self.frame[..n])?;
        Ok(())
    }
}

/// Writes one dump. See the [module docs](self).
pub struct DumpWriter<S: Sink> {
    out: Out<S>,
    /// Blobs being packed (events, symbols) and formatted text (the panic message).
    scratch: [u8; CHUNK],
    events: u64,
}

impl<S: Sink> DumpWriter<S> {
    /// A writer onto `sink`; writes nothing yet.
    pub fn new(sink: S) -> Self {
        DumpWriter {
            out: Out {
                sink,
                payload: [0; MAX_PAYLOAD + 4],
                frame: [0; frame::MAX_WRITTEN_FRAME],
                records: 0,
                bytes: 0,
                first_error: None,
            },
            scratch: [0; CHUNK],
            events: 0,
        }
    }

    /// Writes any record (for embedders with their own records, e.g. notes).
    pub fn record(&mut self, rec: &Record<'_>) -> Result<(), DumpError> {
        self.out.put(rec)
    }

    /// The header: this crate's format version and architecture, the clock and the time
    /// now (`timestamp` on that clock), and the producer (program name and version).
    pub fn header(
        &mut self,
        producer: &str,
        clock: ClockInfo,
        timestamp: u64,
    ) -> Result<(), DumpError> {
        #[cfg(feature = "std")]
        let wall_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as u64);
        #[cfg(not(feature = "std"))]
        let wall_ns = None;
        self.out.put(&Record::Header(Header {
            magic: wire::MAGIC,
            major: wire::VERSION_MAJOR,
            minor: wire::VERSION_MINOR,
            arch: wire::arch::NATIVE,
            pointer_width: core::mem::size_of::<usize>() as u8,
            big_endian: cfg!(target_endian = "big"),
            clock,
            timestamp,
            wall_ns,
            producer: truncate_str(producer, MAX_NAME).0,
            max_payload: MAX_PAYLOAD as u32,
        }))
    }

    /// The cause, as given.
    pub fn cause(&mut self, cause: &Cause<'_>) -> Result<(), DumpError> {
        self.out.put(&Record::Cause(cause.clone()))
    }

    /// A panic as the cause: the message (formatted without allocating, cut at
    /// [`MAX_MESSAGE`] bytes) and location.
    pub fn cause_panic(
        &mut self,
        message: &dyn core::fmt::Display,
        location: Option<&Location<'_>>,
        task: u64,
    ) -> Result<(), DumpError> {
        let mut w = SliceWriter::new(&mut self.scratch[..MAX_MESSAGE]);
        let _ = core::fmt::write(&mut w, format_args!("{message}"));
        let truncated = w.truncated();
        let message = w.into_str();
        let (file, line, column) = match location {
            Some(l) => (truncate_str(l.file(), MAX_NAME).0, l.line(), l.column()),
            None => ("", 0, 0),
        };
        self.out.put(&Record::Cause(Cause::Panic {
            message,
            truncated,
            file,
            line,
            column,
            task,
        }))
    }

    /// A trap as the cause.
    pub fn cause_trap(
        &mut self,
        kind: TrapKind,
        pc: u64,
        address: Option<u64>,
        code: u64,
        task: u64,
    ) -> Result<(), DumpError> {
        self.out.put(&Record::Cause(Cause::Trap {
            kind,
            pc,
            address,
            code,
            task,
        }))
    }

    /// A free-text note for the reader (cut at [`MAX_MESSAGE`] bytes).
    pub fn note(&mut self, text: &str) -> Result<(), DumpError> {
        self.out
            .put(&Record::Note(truncate_str(text, MAX_MESSAGE).0))
    }

    /// A note formatted without allocating.
    pub fn note_fmt(&mut self, args: core::fmt::Arguments<'_>) -> Result<(), DumpError> {
        let mut w = SliceWriter::new(&mut self.scratch[..MAX_MESSAGE]);
        let _ = core::fmt::write(&mut w, args);
        let text = w.into_str();
        self.out.put(&Record::Note(text))
    }

    /// Records and bytes written so far.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.out.records,
            events: self.events,
            bytes: self.out.bytes,
            error: self.out.first_error,
        }
    }

    /// Writes the end record, flushes the sink and returns it with the summary.
    pub fn finish(mut self) -> (S, Summary) {
        let end = EndRecord {
            records: self.out.records,
            events: self.events,
            bytes: self.out.bytes,
        };
        let _ = self.out.put(&Record::End(end));
        if let Err(e) = self.out.sink.flush() {
            self.out.first_error.get_or_insert(e.into());
        }
        let summary = self.summary();
        (self.out.sink, summary)
    }
}
