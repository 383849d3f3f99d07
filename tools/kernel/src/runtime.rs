//! The kernel's panic runtime on clew: the `#[panic_handler]`, the two symbols rustc's
//! `panic=unwind` code needs from a runtime (`rust_eh_personality`, named by every CIE,
//! and `_Unwind_Resume`, called at the end of every cleanup landing pad), and the hook
//! for unwinds that find no catch point.
//!
//! Nothing here allocates or takes a lock: the panic message is formatted into a fixed
//! buffer inside a static exception object, and the backtrace's PCs into a static array
//! that is symbolized later, after the catch, where allocating is fine again.

use core::cell::UnsafeCell;
use core::ffi::c_int;
use core::fmt::{self, Write};
use core::panic::PanicInfo;

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::itanium::{self, Action, ReasonCode, UnwindContext, UnwindException};
use clew_unwinder::panic::{self as runtime, Exception, UnwindFailure};
use clew_unwinder::{FrameKind, LiveMemory, Native, Unwinder};

use crate::println;

/// A panic's payload: its message, formatted without allocating.
pub struct Payload {
    msg: [u8; 256],
    len: usize,
}

impl Payload {
    const fn new() -> Self {
        Payload {
            msg: [0; 256],
            len: 0,
        }
    }

    pub fn message(&self) -> &str {
        core::str::from_utf8(&self.msg[..self.len]).unwrap_or("<message cut in a UTF-8 sequence>")
    }
}

impl Write for Payload {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.msg.len() - self.len);
        self.msg[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The most frames a panic backtrace keeps.
pub const MAX_FRAMES: usize = 64;

/// The PCs (return addresses, exact for the first) of the last panic's stack, and how
/// each frame was unwound.
pub struct PanicTrace {
    pub pcs: [(u64, FrameKind); MAX_FRAMES],
    pub len: usize,
}

impl PanicTrace {
    pub const fn new() -> Self {
        PanicTrace {
            pcs: [(0, FrameKind::Unknown); MAX_FRAMES],
            len: 0,
        }
    }
}

impl Default for PanicTrace {
    fn default() -> Self {
        Self::new()
    }
}

/// The one panic in flight (the demo kernel runs on one CPU): its exception object and
/// its backtrace.
struct PanicSlot {
    exception: UnsafeCell<Exception<Payload>>,
    trace: UnsafeCell<PanicTrace>,
}

// SAFETY: one CPU, no interrupts: only the panicking code path touches the slot, and the
// code that caught the panic reads it after the unwind.
unsafe impl Sync for PanicSlot {}

static SLOT: PanicSlot = PanicSlot {
    exception: UnsafeCell::new(Exception::new(Payload::new())),
    trace: UnsafeCell::new(PanicTrace::new()),
};

/// The backtrace of the last panic.
pub fn last_trace() -> &'static PanicTrace {
    // SAFETY: read after the catch, while no panic is in flight.
    unsafe { &*SLOT.trace.get() }
}

/// The payload of the panic a catch point returned.
///
/// # Safety
/// `header` must come from [`clew_unwinder::panic::catch_unwind`] in this kernel.
pub unsafe fn payload(header: *mut UnwindException) -> Option<&'static Payload> {
    // SAFETY: every exception this kernel raises is the slot's `Exception<Payload>`.
    unsafe { Exception::<Payload>::from_header(header) }.map(|e| &e.value)
}

#[panic_handler]
fn on_panic(info: &PanicInfo<'_>) -> ! {
    // SAFETY: see `PanicSlot`; a panic while this one is in flight is caught by
    // `begin_panic`'s double-panic check before the exception is touched again.
    let (exc, trace) = unsafe { (&mut *SLOT.exception.get(), &mut *SLOT.trace.get()) };
    let payload = &mut exc.value;
    payload.len = 0;
    let _ = write!(payload, "{}", info.message());
    match info.location() {
        Some(l) => println!(
            "clew-kernel: panicked at {}:{}: {}",
            l.file(),
            l.line(),
            payload.message()
        ),
        None => println!("clew-kernel: panicked: {}", payload.message()),
    }
    crate::gdb::on_panic();
    let regs = Regs::capture();
    capture(trace);
    crate::dump::write_if_armed(info, &regs, trace);
    print_raw(trace);
    println!("clew-kernel: unwinding ({} frames on the stack)", trace.len);
    // SAFETY: the exception lives in a static.
    unsafe { runtime::begin_panic(exc) }
}

/// The panic-time backtrace, without allocating: JIT frames named from the registry's
/// symbol maps, the others by address (named after the catch, by the symbolizer).
fn print_raw(trace: &PanicTrace) {
    println!("clew-kernel: panic backtrace (JIT frames named from clew's registry):");
    let guard = clew_unwinder::global().pin();
    for (i, &(pc, _)) in trace.pcs[..trace.len].iter().enumerate() {
        let at = pc as usize - 1;
        match guard.find_module(at) {
            Some(m) => match m.symbols().lookup(at) {
                Some(hit) => println!(
                    "  #{i:<2} {pc:#018x} {}+{:#x} ({})",
                    hit.name,
                    hit.offset,
                    m.name()
                ),
                None => println!("  #{i:<2} {pc:#018x} ({})", m.name()),
            },
            None => println!("  #{i:<2} {pc:#018x} (no registered module)"),
        }
    }
}

/// Walks the current stack into `trace` through clew's registry, falling back to the
/// frame pointer for frames without CFI (the precompiled libcore's).
#[inline(never)]
pub fn capture(trace: &mut PanicTrace) {
    let regs = Regs::capture();
    // SAFETY: the kernel trusts its own stack.
    let mem = unsafe { LiveMemory::unchecked() };
    let unwinder =
        Unwinder::<Native>::new(clew_unwinder::global()).with_frame_pointer_fallback(true);
    trace.len = 0;
    for frame in unwinder.frames(regs, false, &mem, None) {
        let Ok(frame) = frame else { break };
        if trace.len == MAX_FRAMES {
            break;
        }
        trace.pcs[trace.len] = (frame.pc, frame.kind);
        trace.len += 1;
    }
}

/// The personality routine named by the CIE of every function rustc compiled with
/// `-C panic=unwind` (rustc declares `rust_eh_personality` when no crate defines the
/// `eh_personality` lang item, which needs nightly).
///
/// # Safety
/// Called by the unwinder, as the Itanium ABI specifies.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rust_eh_personality(
    version: c_int,
    actions: Action,
    class: u64,
    exc: *mut UnwindException,
    ctx: *mut UnwindContext,
) -> ReasonCode {
    // SAFETY: forwarded.
    unsafe { runtime::rust_personality(version, actions, class, exc, ctx) }
}

/// Called at the end of every cleanup landing pad (LLVM's `resume`): continues phase 2
/// from the frame that called it.
///
/// `extern "C-unwind"`, not `"C"`: rustc marks `extern "C"` definitions `nounwind`, and
/// LLVM then leaves calls to them out of the LSDA's call-site table in every function of
/// the same LLVM module (generic code instantiated in this crate, such as Wasmtime's
/// host-call glue). The personality, asked about the landing pad's own frame when the
/// unwind resumes, would find its PC in no call site and answer "terminate".
///
/// # Safety
/// Called by a landing pad with the exception being unwound.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn _Unwind_Resume(exc: *mut UnwindException) -> ! {
    let regs = Regs::capture();
    // SAFETY: `regs` were captured in this entry point's frame.
    let code = unsafe { itanium::resume(regs, exc) };
    runtime::unwinding_failed(UnwindFailure::Fatal(code), exc)
}

/// The unwinding-failed hook: no catch point, or a panic while panicking.
pub fn unwinding_failed(why: UnwindFailure, _exc: *mut UnwindException) -> ! {
    println!("clew-kernel: unwinding failed: {why:?}");
    crate::exit::failure()
}
