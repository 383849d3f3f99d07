//! The bridge's [`Machine`] over a [`TrapFrame`]: registers from the frame the
//! exception entry saved (written back by its `iretq`), memory checked against the RAM
//! the boot memory map gave the kernel (identity-mapped, read-write-execute: it holds
//! the kernel, its heap, the JIT code Wasmtime loaded there, and the blobs QEMU loaded),
//! and the kernel's own ELF file (QEMU loads it raw in RAM) served as the library gdb
//! reads the kernel's symbols and DWARF from.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use clew_gdbstub_bridge::{BadAddress, FileError, Machine, NativeObject, Registers};

use super::trap::{TF, TrapFrame};

/// The path gdb sees the kernel's ELF file under.
pub const KERNEL_PATH: &str = "/clew/kernel/clew-kernel";

pub struct KernelMachine {
    /// The stopped context (valid while the stub serves a stop).
    pub frame: *mut TrapFrame,
    /// The memory gdb may read and write.
    pub ram: Range<u64>,
    /// The kernel's ELF file, as QEMU loaded it.
    pub elf: Option<&'static [u8]>,
    /// The address of its first `PT_LOAD` segment.
    pub elf_segment: u64,
}

// SAFETY: one CPU; the frame pointer is only used while the stub serves a stop.
unsafe impl Send for KernelMachine {}

impl KernelMachine {
    fn frame(&self) -> &TrapFrame {
        // SAFETY: `frame` points at the entry's saved frame while a stop is served.
        unsafe { &*self.frame }
    }

    fn frame_mut(&mut self) -> &mut TrapFrame {
        // SAFETY: as for `frame`.
        unsafe { &mut *self.frame }
    }

    /// How many bytes from `addr` (up to `len`) lie in RAM.
    fn mapped(&self, addr: u64, len: usize) -> usize {
        if !self.ram.contains(&addr) {
            return 0;
        }
        (self.ram.end - addr).min(len as u64) as usize
    }
}

impl Machine for KernelMachine {
    fn registers(&self) -> Registers {
        let f = self.frame();
        let mut r = Registers {
            regs: [
                f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11,
                f.r12, f.r13, f.r14, f.r15,
            ],
            rip: f.rip,
            eflags: f.rflags as u32,
            ..Registers::default()
        };
        r.segments.cs = f.cs as u32;
        r.segments.ss = f.ss as u32;
        r.segments.ds = 0x10;
        r.segments.es = 0x10;
        r
    }

    fn set_registers(&mut self, r: &Registers) {
        let f = self.frame_mut();
        [
            f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11,
            f.r12, f.r13, f.r14, f.r15,
        ] = r.regs;
        f.rip = r.rip;
        // Only the arithmetic flags, TF, DF: gdb may not turn interrupts on or change IOPL.
        const WRITABLE: u64 = 0x0CD5 | TF;
        f.rflags = (f.rflags & !WRITABLE) | (r.eflags as u64 & WRITABLE);
        // The segments stay the boot GDT's.
    }

    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<usize, BadAddress> {
        let n = self.mapped(addr, buf.len());
        if n == 0 {
            return Err(BadAddress);
        }
        // SAFETY: `addr..addr + n` is identity-mapped RAM; a volatile copy, since JIT
        // code or a breakpoint patch may change it behind the compiler's back.
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = unsafe { core::ptr::read_volatile((addr as usize + i) as *const u8) };
        }
        Ok(n)
    }

    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), BadAddress> {
        if self.mapped(addr, data.len()) != data.len() {
            return Err(BadAddress);
        }
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: in RAM (checked above); the boot page tables map it writable, code
            // included (software breakpoints patch it).
            unsafe { core::ptr::write_volatile((addr as usize + i) as *mut u8, b) };
        }
        Ok(())
    }

    fn set_single_step(&mut self, on: bool) {
        let f = self.frame_mut();
        if on {
            f.rflags |= TF;
        } else {
            f.rflags &= !TF;
        }
    }

    fn native_objects(&self) -> Vec<NativeObject> {
        match self.elf {
            Some(_) => vec![NativeObject {
                path: String::from(KERNEL_PATH),
                segment: self.elf_segment,
            }],
            None => Vec::new(),
        }
    }

    fn read_file(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        let elf = self.elf.filter(|_| path == KERNEL_PATH).ok_or(FileError)?;
        let start = (offset as usize).min(elf.len());
        let n = buf.len().min(elf.len() - start);
        buf[..n].copy_from_slice(&elf[start..start + n]);
        Ok(n)
    }

    fn file_size(&mut self, path: &str) -> Option<u64> {
        self.elf
            .filter(|_| path == KERNEL_PATH)
            .map(|e| e.len() as u64)
    }
}
