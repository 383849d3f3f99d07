//! Architecture-specific parts behind one trait: the register set, the DWARF register
//! numbers that matter to a walk, the frame-pointer convention, and capturing the
//! current registers. `x86_64` now; `aarch64` implements the same trait next.

pub mod x86_64;

/// A register set that accepts every DWARF register number: registers it does not hold
/// read as `None` and ignore writes, never panic.
pub trait Registers: Clone + core::fmt::Debug {
    fn get(&self, reg: u16) -> Option<u64>;
    /// Sets `reg`; returns `false` when this register set does not hold it.
    fn set(&mut self, reg: u16, value: u64) -> bool;
    fn pc(&self) -> u64;
    fn set_pc(&mut self, pc: u64);
    fn sp(&self) -> u64;
    fn set_sp(&mut self, sp: u64);
}

/// One architecture's unwinding conventions.
pub trait Arch {
    type Regs: Registers;
    /// The DWARF return-address column.
    const RA: u16;
    /// The DWARF number of the stack pointer.
    const SP: u16;
    /// The DWARF number of the frame pointer.
    const FP: u16;
    /// Where a frame-pointer frame keeps the caller's frame pointer and return address,
    /// relative to the CFA, and the CFA relative to the frame pointer.
    const FP_CFA_OFFSET: i32;
    const FP_SAVED_FP_OFFSET: i16;
    const FP_RA_OFFSET: i16;
}

/// The architecture this crate was built for.
#[cfg(target_arch = "x86_64")]
pub type Native = x86_64::X86_64;
