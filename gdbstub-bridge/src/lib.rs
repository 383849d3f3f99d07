//! clew-gdbstub-bridge: a GDB Remote Serial Protocol stub (over the `gdbstub` crate) that
//! shows gdb a stopped program's registers and memory, and the JIT code in clew's
//! registry as libraries with symbols and `.eh_frame`, so that a bare
//! `gdb -ex 'target remote …' -ex bt` names JIT frames.
//!
//! ```text
//! embedder (signal handler, exception vector) ──stop(cause)──► Bridge ──► session loop
//!    │ Machine: registers of the saved context, checked memory, single-step flag      │
//!    ▼                                                                               ▼
//! Transport (UART, TCP, pty) ◄── Framer (checksums, resync, oversize) ◄─ gdbstub ◄─ BridgeTarget
//!                                                                      registers, memory, int3 breakpoints,
//!                                                                      qXfer:libraries + vFile (JIT ELF images),
//!                                                                      exec file, target.xml (osabi none), monitor
//! ```
//!
//! The core is `no_std` + `alloc`; the `std` feature adds TCP and pty transports and the
//! host target ([`host`]): a Linux process that enters the stub from its `SIGTRAP`
//! handler.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod breakpoints;
pub mod bridge;
pub mod files;
pub mod framer;
pub mod jit_elf;
pub mod libraries;
pub mod machine;
pub mod monitor;
pub mod target;
pub mod transport;

#[cfg(all(feature = "std", target_os = "linux", target_arch = "x86_64"))]
pub mod host;

pub use bridge::{Bridge, Config, Resume, StopCause};
pub use machine::{BadAddress, FileError, Machine, NativeObject, Registers};
pub use transport::{Closed, SerialLine, Transport, Uart};
