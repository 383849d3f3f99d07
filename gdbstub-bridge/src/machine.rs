//! What the embedder gives the stub: the stopped context and checked memory.
//!
//! The stub never touches memory or registers itself: a kernel implements [`Machine`]
//! over its saved exception frame and page tables, the host target ([`crate::host`])
//! over a signal's `ucontext` and `process_vm_readv`.

pub use gdbstub_arch::x86::reg::X86_64CoreRegs as Registers;

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

    /// The path gdb is told to load as the exec file (`qXfer:exec-file`), served by
    /// [`Machine::read_exec_file`] over host I/O. `None`: no exec file.
    fn exec_path(&self) -> Option<&str> {
        None
    }
    /// The runtime address of the exec file's first `PT_LOAD` segment (`qOffsets`
    /// `TextSeg`): its load bias for a position-independent executable.
    fn exec_text_segment(&self) -> Option<u64> {
        None
    }
    /// Reads the exec file's bytes at `offset`; `Ok(0)` past its end.
    fn read_exec_file(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, ()> {
        let _ = (offset, buf);
        Err(())
    }
    /// The exec file's size in bytes.
    fn exec_file_size(&self) -> Option<u64> {
        None
    }
    /// Answers a `monitor` command the bridge does not know; `false` when unknown.
    fn monitor(&mut self, cmd: &str, out: &mut dyn core::fmt::Write) -> bool {
        let _ = (cmd, out);
        false
    }
}
