//! # clew-tracer
//!
//! A no_std flight recorder and panic-time post-mortem dumps.
//!
//! - [`ring`]: fixed-capacity rings of compact [`Event`]s that overwrite their oldest
//!   events; lock-free producers (a per-slot seqlock), readable while producers run.
//! - [`recorder`]: per-thread/per-CPU rings plus a shared ring, a pluggable [`clock`],
//!   the process-wide [`global`] recorder, [`record`] and the [`trace!`] macro.
//! - [`modules`]: built-in module registered/deregistered events around the unwinder's
//!   registry, and panic/trap/breakpoint events.
//! - [`dump`]: a [`DumpWriter`] that writes header, cause, module map (with JIT modules'
//!   `.eh_frame` and symbols), registers, a bounded stack copy, backtrace PCs and the
//!   rings' events as framed, checksummed postcard records to a [`Sink`] without
//!   allocating.
//! - [`decode`] (`alloc`): every intact record of a possibly damaged dump, and where and
//!   why the rest was not trusted.
//!
//! The wire format is described in `FORMAT.md`.
//!
//! ```
//! use clew_tracer::{EventId, trace};
//! const REQUEST: EventId = EventId::user(1);
//! trace!(REQUEST, 42, 7);
//! ```
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod clock;
#[cfg(feature = "alloc")]
pub mod decode;
pub mod dump;
pub mod event;
pub mod frame;
pub mod modules;
pub mod recorder;
pub mod ring;
pub mod sink;
pub mod wire;

pub use dump::{DumpError, DumpWriter};
pub use event::{Event, EventId, MAX_ARGS};
pub use recorder::{GlobalRecorder, Producer, Recorder, global, record, record_n};
pub use ring::Ring;
pub use sink::{Sink, SinkError, SliceSink};

/// Records an event in the [`global`] recorder: `trace!(id, args...)` with an
/// [`EventId`] and at most four arguments, each converted with `as u64`.
///
/// ```
/// clew_tracer::trace!(clew_tracer::EventId::user(3), 1, 2u8, -1i32);
/// ```
#[macro_export]
macro_rules! trace {
    ($id:expr $(, $arg:expr)* $(,)?) => {
        $crate::record_n($id, [$(($arg) as u64),*])
    };
}
