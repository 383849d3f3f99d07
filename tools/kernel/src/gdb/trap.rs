//! The exception entry the gdb stub is reached through: an IDT whose gates for #DE (0),
//! #DB (1), #BP (3), #UD (6), #GP (13) and #PF (14) lead to one assembly entry that
//! saves every general-purpose register next to the CPU's own frame (rip, cs, rflags,
//! rsp, ss), calls [`clew_kernel_gdb_trap`] with a pointer to the whole [`TrapFrame`],
//! and returns with `iretq` from the frame as the stub left it: gdb's register writes,
//! a moved PC, the trap flag for a single step.
//!
//! The IDT is only loaded when the command line asks for the stub (`clew.gdb=com3`):
//! without it the kernel keeps the boot behavior (no IDT: any exception triple-faults,
//! and QEMU ends with status 0, which `clew qemu` reports as a crash).
//!
//! Gates are interrupt gates (interrupts stay off) on the current stack: no privilege
//! change in this single-ring kernel, so the CPU pushes ss:rsp too and aligns rsp to 16
//! first. The entry pushes a zero error code for vectors without one, then the vector,
//! then the GPRs: 22 words, so rsp is still 16-aligned at the call.

use core::cell::UnsafeCell;

/// What the entry saved, lowest address first: the GPRs it pushed, the vector and error
/// code, then the CPU's interrupt frame.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The trap flag (single step) in rflags.
pub const TF: u64 = 1 << 8;

macro_rules! entry_no_error {
    ($name:literal, $vector:literal) => {
        concat!(
            ".globl ",
            $name,
            "\n",
            $name,
            ":\n",
            "    push 0\n",
            "    push ",
            $vector,
            "\n",
            "    jmp clew_kernel_gdb_common\n"
        )
    };
}

macro_rules! entry_error {
    ($name:literal, $vector:literal) => {
        concat!(
            ".globl ",
            $name,
            "\n",
            $name,
            ":\n",
            "    push ",
            $vector,
            "\n",
            "    jmp clew_kernel_gdb_common\n"
        )
    };
}

core::arch::global_asm!(
    ".section .text.clew_gdb, \"ax\", @progbits",
    entry_no_error!("clew_kernel_gdb_de", "0"),
    entry_no_error!("clew_kernel_gdb_db", "1"),
    entry_no_error!("clew_kernel_gdb_bp", "3"),
    entry_no_error!("clew_kernel_gdb_ud", "6"),
    entry_error!("clew_kernel_gdb_gp", "13"),
    entry_error!("clew_kernel_gdb_pf", "14"),
    "clew_kernel_gdb_common:",
    "    push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov rdi, rsp",
    // rbp is saved: use it to keep the frame while rsp is realigned (paranoia: the
    // CPU's 16-byte alignment plus 22 pushed words already align it).
    "    mov rbp, rsp",
    "    and rsp, -16",
    "    cld",
    "    call clew_kernel_gdb_trap",
    "    mov rsp, rbp",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rbp",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    pop rax",
    // The vector and the error code.
    "    add rsp, 16",
    "    iretq",
    ".text",
);

unsafe extern "C" {
    fn clew_kernel_gdb_de();
    fn clew_kernel_gdb_db();
    fn clew_kernel_gdb_bp();
    fn clew_kernel_gdb_ud();
    fn clew_kernel_gdb_gp();
    fn clew_kernel_gdb_pf();
}

/// One 16-byte IDT gate.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Gate([u64; 2]);

impl Gate {
    const EMPTY: Gate = Gate([0, 0]);

    /// A present, ring-0 64-bit interrupt gate (type 0xE) to `handler` in the boot
    /// GDT's code segment (selector 0x08).
    fn interrupt(handler: u64) -> Gate {
        let low =
            (handler & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | ((handler >> 16) & 0xFFFF) << 48;
        Gate([low, handler >> 32])
    }
}

struct Idt(UnsafeCell<[Gate; 32]>);

// SAFETY: written once by `install` (one CPU, before any exception can use it).
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::EMPTY; 32]));

/// Fills the IDT's gates and loads it.
pub fn install() {
    let handlers: [(usize, unsafe extern "C" fn()); 6] = [
        (0, clew_kernel_gdb_de),
        (1, clew_kernel_gdb_db),
        (3, clew_kernel_gdb_bp),
        (6, clew_kernel_gdb_ud),
        (13, clew_kernel_gdb_gp),
        (14, clew_kernel_gdb_pf),
    ];
    // SAFETY: one CPU, interrupts off, no exception taken yet through this IDT.
    let idt = unsafe { &mut *IDT.0.get() };
    for (vector, handler) in handlers {
        idt[vector] = Gate::interrupt(handler as usize as u64);
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (core::mem::size_of::<[Gate; 32]>() - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is a static with valid gates for every vector an exception of
    // this kernel can raise (the others stay not-present: a double fault, then a triple
    // fault, as before).
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags))
    };
}
