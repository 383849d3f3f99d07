//! The gdb stub inside the kernel: clew's bridge core ([`clew_gdbstub_bridge::Bridge`])
//! on COM3 (I/O port 0x3E8; COM1 is the console, COM2 the post-mortem dump channel).
//!
//! Enabled by `clew.gdb=com3` on the command line (`clew qemu --gdb …` passes it); then
//! the kernel loads its IDT ([`trap`]) and stops at boot, waiting for gdb. The stub is
//! entered from `int3` (gdb's software breakpoints, [`breakpoint`], which
//! `clew.breakpoint` calls), from the trap flag (`stepi`, vector 1), from a panic
//! ([`on_panic`], reported as SIGABRT) and from CPU exceptions: #DE (SIGFPE), #UD
//! (SIGILL), #GP and #PF (SIGSEGV). A faulting instruction is retried on `continue`
//! (gdb sees the fault again, as with a signal gdb passes to nobody); `kill` ends QEMU.
//!
//! The serial line keeps acknowledgments (a packet corrupted on the line is resent) and
//! the bridge's framer resynchronizes after noise. A serial line cannot tell that gdb
//! went away: the next gdb's packets simply continue the session (gdb 13 removes its
//! breakpoints at every stop, so nothing of the old gdb stays in memory).
//!
//! Not panic-path clean: serving gdb allocates (packets, library images). A panic inside
//! the allocator while gdb is enabled would deadlock on the heap lock.

mod machine;
mod trap;

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use clew_gdbstub_bridge::{Bridge, Config, Resume, SerialLine, StopCause, Uart};
use spin::Mutex;

use crate::boot::BootInfo;
use crate::println;
use machine::KernelMachine;
pub use trap::TrapFrame;

/// COM3's I/O base.
const COM3: u16 = 0x3E8;

/// The 16550 at COM3, polled.
pub struct Com3;

impl Uart for Com3 {
    fn read_byte(&mut self) -> Option<u8> {
        Some(crate::serial::read_from(COM3))
    }
    fn write_byte(&mut self, byte: u8) {
        crate::serial::put_to(COM3, byte)
    }
}

type Stub = Bridge<KernelMachine, SerialLine<Com3>>;

static STUB: Mutex<Option<Stub>> = Mutex::new(None);
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The signal the next `int3` reports instead of SIGTRAP (0: none).
static PENDING_SIGNAL: AtomicU8 = AtomicU8::new(0);

/// Whether the stub is enabled.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Starts the stub when the command line has `clew.gdb=com3`, and waits for gdb (a
/// stop at boot). Call with the heap up; `elf` is the kernel's ELF file in RAM.
pub fn init(info: &BootInfo, elf: Option<&'static [u8]>) {
    match info.arg("clew.gdb") {
        None => return,
        Some("com3") => {}
        Some(other) => {
            println!("clew-kernel: gdb: unknown port {other:?} (clew.gdb=com3)");
            return;
        }
    }
    crate::serial::init_port(COM3);
    let machine = KernelMachine {
        frame: core::ptr::null_mut(),
        ram: info.ram.start as u64..info.ram.end.min(4 << 30) as u64,
        elf,
        elf_segment: elf.and_then(first_load).unwrap_or(0),
    };
    let config = Config::new(clew_unwinder::global());
    *STUB.lock() = Some(Bridge::new(machine, SerialLine(Com3), config));
    trap::install();
    ACTIVE.store(true, Ordering::Relaxed);
    println!("clew-kernel: gdb: stub on COM3, waiting for gdb");
    breakpoint();
    println!("clew-kernel: gdb: resumed");
}

/// The address of the first `PT_LOAD` segment of an ELF64 file.
fn first_load(elf: &[u8]) -> Option<u64> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let phoff = u64_at(0x20)? as usize;
    let (size, count) = (u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    (0..count)
        .map(|i| phoff + i * size)
        .find(|&ph| u32_at(ph) == Some(1))
        .and_then(|ph| u64_at(ph + 0x10))
}

/// Stops in the debugger (an `int3`: SIGTRAP, the PC after it). A no-op without it.
#[inline(never)]
pub fn breakpoint() {
    if active() {
        // SAFETY: the IDT routes #BP to the stub, which returns after the `int3`.
        unsafe { core::arch::asm!("int3") };
    }
}

/// A panic with the stub enabled: stops in the debugger as SIGABRT, in the panic
/// handler's frame (gdb's `bt` shows the panicking code under it).
#[inline(never)]
pub fn on_panic() {
    if active() {
        PENDING_SIGNAL.store(6, Ordering::Relaxed);
        // SAFETY: as in `breakpoint`.
        unsafe { core::arch::asm!("int3") };
    }
}

/// The kernel is ending with QEMU status `code`: a gdb waiting in `continue` gets
/// "exited with code N".
pub fn exiting(code: u8) {
    if active()
        && let Some(mut stub) = STUB.try_lock()
        && let Some(stub) = stub.as_mut()
    {
        stub.exited(code);
    }
}

/// The exception entry's Rust half: serves gdb for the stop, then returns to the entry,
/// which resumes from the (possibly changed) frame.
#[unsafe(no_mangle)]
extern "C" fn clew_kernel_gdb_trap(frame: *mut TrapFrame) {
    // SAFETY: the entry passes its saved frame, live until this returns.
    let f = unsafe { &mut *frame };
    let cause = match f.vector {
        1 => StopCause::Step,
        3 => match PENDING_SIGNAL.swap(0, Ordering::Relaxed) {
            0 => StopCause::Trap,
            signal => StopCause::Signal(signal),
        },
        0 => StopCause::Signal(8),
        6 => StopCause::Signal(4),
        _ => StopCause::Signal(11),
    };
    let Some(mut guard) = STUB.try_lock() else {
        println!(
            "clew-kernel: gdb: exception {} at {:#x} inside the stub (error {:#x})",
            f.vector, f.rip, f.error
        );
        crate::exit::failure_now()
    };
    let Some(stub) = guard.as_mut() else {
        println!(
            "clew-kernel: exception {} at {:#x} without the stub",
            f.vector, f.rip
        );
        crate::exit::failure_now()
    };
    stub.machine_mut().frame = frame;
    let resume = stub.stop(cause);
    stub.machine_mut().frame = core::ptr::null_mut();
    if resume == Resume::Kill {
        drop(guard);
        println!("clew-kernel: gdb: killed");
        crate::exit::failure_now()
    }
}
