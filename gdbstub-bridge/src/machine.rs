//! What the embedder gives the stub: the stopped context and checked memory.
//!
//! The stub never touches memory or registers itself: a kernel implements [`Machine`]
//! over its saved exception frame and page tables, the host target ([`crate::host`])
//! over a signal's `ucontext` and `process_vm_readv`.

use alloc::string::String;
use alloc::vec::Vec;

pub use gdbstub_arch::x86::reg::X86_64CoreRegs as Registers;

/// A file the machine cannot read (gdb gets `EIO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileError;

/// A native code file gdb should load as a library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeObject {
    /// Its path (what gdb opens over host I/O).
    pub path: String,
    /// The runtime address of its first `PT_LOAD` segment.
    pub segment: u64,
}

/// An address the machine cannot read or write: gdb gets an error packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress;

/// The stopped target as the stub sees it.
pub trait Machine {
    /// The registers of the stopped context.
    fn registers(&self) -> Registers;
    /// Replaces the stopped context's registers (they take effect on resume).
    fn set_registers(&mut self, regs: &Registers);
    /// Reads up to `buf.len()` bytes at `addr`; returns how many leading bytes were
    /// readable (at least one), or [`BadAddress`] when the first byte is not. Never
    /// faults.
    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<usize, BadAddress>;
    /// Writes `data` at `addr`, including into executable (read-only) code, which
    /// software breakpoints patch. All or nothing.
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), BadAddress>;
    /// Makes the next resume execute one instruction and stop again
    /// ([`crate::StopCause::Step`]); `false` clears it.
    fn set_single_step(&mut self, on: bool);

    /// Native code files to list as libraries (the executable, shared objects): each
    /// with the runtime address of its first `PT_LOAD`. gdb reads them with
    /// [`Machine::read_file`]. Empty by default (a kernel lists its image here).
    fn native_objects(&self) -> Vec<NativeObject> {
        Vec::new()
    }
    /// Reads `path` (one of [`Machine::native_objects`]) at `offset`; `Ok(0)` past its
    /// end.
    fn read_file(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        let _ = (path, offset, buf);
        Err(FileError)
    }
    /// The size of `path` (one of [`Machine::native_objects`]).
    fn file_size(&mut self, path: &str) -> Option<u64> {
        let _ = path;
        None
    }
    /// Writes `bytes` to the file `path` on the target (`monitor dump FILE`).
    fn write_file(&mut self, path: &str, bytes: &[u8]) -> Result<(), FileError> {
        let _ = (path, bytes);
        Err(FileError)
    }
    /// Answers a `monitor` command the bridge does not know; `false` when unknown.
    fn monitor(&mut self, cmd: &str, out: &mut dyn core::fmt::Write) -> bool {
        let _ = (cmd, out);
        false
    }
}
