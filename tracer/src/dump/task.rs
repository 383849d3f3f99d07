//! A task's state: registers, a bounded stack snapshot, backtrace PCs.

use super::{CHUNK, DumpError, DumpWriter};
use crate::sink::Sink;
use crate::wire::{BacktraceRecord, Bytes, Record, RegistersRecord, StackChunk, StackInfo, arch};

impl<S: Sink> DumpWriter<S> {
    /// x86_64 registers of `task` (DWARF order: rax..r15, rip).
    #[cfg(target_arch = "x86_64")]
    pub fn registers(
        &mut self,
        task: u64,
        regs: &clew_unwinder::arch::x86_64::Regs,
    ) -> Result<(), DumpError> {
        self.registers_raw(task, arch::X86_64, &regs.gpr)
    }

    /// Registers of `task` on architecture `arch` (ELF `e_machine`), in DWARF order.
    pub fn registers_raw(&mut self, task: u64, arch: u16, regs: &[u64]) -> Result<(), DumpError> {
        let n = regs.len().min(CHUNK / 8);
        for (d, r) in self.scratch.chunks_exact_mut(8).zip(&regs[..n]) {
            d.copy_from_slice(&r.to_le_bytes());
        }
        self.out.put(&Record::Registers(RegistersRecord {
            task,
            arch,
            regs: Bytes(&self.scratch[..n * 8]),
        }))
    }

    /// A stack snapshot of `task`: `bytes` is the memory at address `start` (usually the
    /// stack pointer up to the stack's top, bounded by the caller); `truncated` says the
    /// stack went on past it.
    pub fn stack(
        &mut self,
        task: u64,
        start: u64,
        bytes: &[u8],
        truncated: bool,
    ) -> Result<(), DumpError> {
        self.out.put(&Record::StackInfo(StackInfo {
            task,
            start,
            end: start.wrapping_add(bytes.len() as u64),
            truncated,
        }))?;
        for (i, c) in bytes.chunks(CHUNK).enumerate() {
            self.out.put(&Record::Stack(StackChunk {
                task,
                addr: start.wrapping_add((i * CHUNK) as u64),
                bytes: Bytes(c),
            }))?;
        }
        Ok(())
    }

    /// The backtrace PCs of `task`, innermost first.
    pub fn backtrace(&mut self, task: u64, pcs: &[usize]) -> Result<(), DumpError> {
        const PER: usize = CHUNK / 8;
        for (i, c) in pcs.chunks(PER).enumerate() {
            for (d, pc) in self.scratch.chunks_exact_mut(8).zip(c) {
                d.copy_from_slice(&(*pc as u64).to_le_bytes());
            }
            self.out.put(&Record::Backtrace(BacktraceRecord {
                task,
                first: (i * PER) as u32,
                pcs: Bytes(&self.scratch[..c.len() * 8]),
            }))?;
        }
        Ok(())
    }
}

impl<S: Sink> DumpWriter<S> {
    /// A stack snapshot of `task` copied from live memory: `len` bytes at address
    /// `start` (usually the stack pointer; bound `len` by the stack's top and a size
    /// limit). Copies through raw pointers, a chunk at a time into the writer's buffer.
    ///
    /// # Safety
    /// `start..start + len` must be readable for the whole call, and must not hold this
    /// `DumpWriter` (capture the registers in a frame that calls the function holding
    /// the writer, as [`host::write_thread_dump`](super::host) does, or keep the writer
    /// in a `static`).
    pub unsafe fn stack_live(
        &mut self,
        task: u64,
        start: u64,
        len: usize,
        truncated: bool,
    ) -> Result<(), DumpError> {
        self.out.put(&Record::StackInfo(StackInfo {
            task,
            start,
            end: start.wrapping_add(len as u64),
            truncated,
        }))?;
        let mut off = 0;
        while off < len {
            let n = (len - off).min(CHUNK);
            let src = (start as usize).wrapping_add(off) as *const u8;
            // SAFETY: readable per the caller; the scratch buffer is this writer's and
            // lies outside the copied range (caller's contract).
            unsafe { core::ptr::copy(src, self.scratch.as_mut_ptr(), n) };
            self.out.put(&Record::Stack(StackChunk {
                task,
                addr: start.wrapping_add(off as u64),
                bytes: Bytes(&self.scratch[..n]),
            }))?;
            off += n;
        }
        Ok(())
    }
}
