//! x86_64 (System V): DWARF registers 0–16 and capturing the current context.

use core::fmt;

use super::{Arch, Registers};

/// The x86_64 architecture.
pub struct X86_64;

impl Arch for X86_64 {
    type Regs = Regs;
    const RA: u16 = Regs::RA;
    const SP: u16 = Regs::RSP;
    const FP: u16 = Regs::RBP;
    const FP_CFA_OFFSET: i32 = 16;
    const FP_SAVED_FP_OFFSET: i16 = -16;
    const FP_RA_OFFSET: i16 = -8;
}

/// The general-purpose registers by DWARF number (rax, rdx, rcx, rbx, rsi, rdi, rbp,
/// rsp, r8–r15) and the return address / rip (16). Vector registers are not held.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Regs {
    pub gpr: [u64; 17],
}

impl Regs {
    pub const RAX: u16 = 0;
    pub const RDX: u16 = 1;
    pub const RCX: u16 = 2;
    pub const RBX: u16 = 3;
    pub const RSI: u16 = 4;
    pub const RDI: u16 = 5;
    pub const RBP: u16 = 6;
    pub const RSP: u16 = 7;
    pub const RA: u16 = 16;

    /// Registers as they are in the caller of this function, right after the call
    /// returns: rip is the return address, rsp the caller's stack pointer, and every
    /// callee-saved register holds the caller's value.
    #[inline(always)]
    pub fn capture() -> Regs {
        let mut regs = Regs::default();
        // SAFETY: `clew_x86_64_getcontext` writes exactly 17 words into `regs` and
        // follows the C ABI.
        unsafe { clew_x86_64_getcontext(&mut regs) };
        regs
    }
}

impl fmt::Debug for Regs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 17] = [
            "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "rip",
        ];
        let mut m = f.debug_map();
        for (n, v) in NAMES.iter().zip(self.gpr) {
            m.entry(n, &format_args!("{v:#x}"));
        }
        m.finish()
    }
}

impl Registers for Regs {
    #[inline]
    fn get(&self, reg: u16) -> Option<u64> {
        self.gpr.get(reg as usize).copied()
    }
    #[inline]
    fn set(&mut self, reg: u16, value: u64) -> bool {
        match self.gpr.get_mut(reg as usize) {
            Some(r) => {
                *r = value;
                true
            }
            None => false,
        }
    }
    #[inline]
    fn pc(&self) -> u64 {
        self.gpr[16]
    }
    #[inline]
    fn set_pc(&mut self, pc: u64) {
        self.gpr[16] = pc
    }
    #[inline]
    fn sp(&self) -> u64 {
        self.gpr[7]
    }
    #[inline]
    fn set_sp(&mut self, sp: u64) {
        self.gpr[7] = sp
    }
}

/// Stores the caller's registers (as they are after this call returns) into `*regs`.
#[unsafe(naked)]
unsafe extern "C" fn clew_x86_64_getcontext(regs: *mut Regs) {
    core::arch::naked_asm!(
        "mov [rdi + 0*8], rax",
        "mov [rdi + 1*8], rdx",
        "mov [rdi + 2*8], rcx",
        "mov [rdi + 3*8], rbx",
        "mov [rdi + 4*8], rsi",
        "mov [rdi + 5*8], rdi",
        "mov [rdi + 6*8], rbp",
        "lea rax, [rsp + 8]",
        "mov [rdi + 7*8], rax",
        "mov [rdi + 8*8], r8",
        "mov [rdi + 9*8], r9",
        "mov [rdi + 10*8], r10",
        "mov [rdi + 11*8], r11",
        "mov [rdi + 12*8], r12",
        "mov [rdi + 13*8], r13",
        "mov [rdi + 14*8], r14",
        "mov [rdi + 15*8], r15",
        "mov rax, [rsp]",
        "mov [rdi + 16*8], rax",
        "ret",
    )
}

impl Regs {
    /// Resumes execution with these registers: every general-purpose register, the stack
    /// pointer and `rip`. Used to enter a landing pad.
    ///
    /// # Safety
    /// The registers must describe a live frame of the current thread (its stack above the
    /// caller's frames), and `rip` code that expects exactly this state.
    pub unsafe fn restore(&self) -> ! {
        // SAFETY: forwarded to the caller.
        unsafe { clew_x86_64_restore(self) }
    }
}

/// Loads `*regs` and jumps to its rip. The new rdi, rax and rip are first stored just
/// below the new stack pointer; every other register is loaded while `regs` is still
/// reachable; the stack switch comes last and the final three values are popped from the
/// new stack, so a signal arriving midway clobbers nothing still needed.
#[unsafe(naked)]
unsafe extern "C" fn clew_x86_64_restore(regs: *const Regs) -> ! {
    core::arch::naked_asm!(
        "mov rax, [rdi + 7*8]",
        "sub rax, 24",
        "mov rbx, [rdi + 0*8]",
        "mov [rax], rbx",
        "mov rbx, [rdi + 5*8]",
        "mov [rax + 8], rbx",
        "mov rbx, [rdi + 16*8]",
        "mov [rax + 16], rbx",
        "mov rdx, [rdi + 1*8]",
        "mov rcx, [rdi + 2*8]",
        "mov rbx, [rdi + 3*8]",
        "mov rsi, [rdi + 4*8]",
        "mov rbp, [rdi + 6*8]",
        "mov r8, [rdi + 8*8]",
        "mov r9, [rdi + 9*8]",
        "mov r10, [rdi + 10*8]",
        "mov r11, [rdi + 11*8]",
        "mov r12, [rdi + 12*8]",
        "mov r13, [rdi + 13*8]",
        "mov r14, [rdi + 14*8]",
        "mov r15, [rdi + 15*8]",
        "mov rsp, rax",
        "pop rax",
        "pop rdi",
        "ret",
    )
}

// The catch point of `crate::panic::catch_unwind`: `clew_x86_64_catch(data, call)` calls
// `call(data)` and returns null; if an unwind stops at this frame (the walk recognises the
// frame by its return address, `clew_x86_64_catch_ret`), the unwinder resumes at
// `clew_x86_64_catch_landing` with rax = the exception, which is returned.
core::arch::global_asm!(
    ".globl clew_x86_64_catch",
    ".type clew_x86_64_catch, @function",
    ".p2align 4",
    "clew_x86_64_catch:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "call rsi",
    ".globl clew_x86_64_catch_ret",
    "clew_x86_64_catch_ret:",
    "xor eax, eax",
    "pop rbp",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_def_cfa rbp, 16",
    ".globl clew_x86_64_catch_landing",
    "clew_x86_64_catch_landing:",
    "mov rsp, rbp",
    "pop rbp",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_endproc",
    ".size clew_x86_64_catch, . - clew_x86_64_catch",
);

unsafe extern "C" {
    /// Calls `call(data)` and returns null, or returns the exception an unwind stopped
    /// here with.
    pub fn clew_x86_64_catch(data: *mut u8, call: unsafe extern "C-unwind" fn(*mut u8)) -> *mut u8;
    /// The return address of the call in `clew_x86_64_catch` (a label, not a function).
    pub static clew_x86_64_catch_ret: u8;
    /// Where an unwind that stops at a catch point resumes (a label, not a function).
    pub static clew_x86_64_catch_landing: u8;
}
