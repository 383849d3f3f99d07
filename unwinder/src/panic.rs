//! A panic runtime for no_std kernels (Theseus, the demo kernel) on clew's unwinder.
//!
//! On stable Rust a no_std binary cannot use `core::intrinsics::catch_unwind` nor define
//! the `eh_personality` lang item. What a kernel needs instead, all here and none of it
//! allocating or taking a lock:
//!
//! - [`rust_personality`]: a personality routine compatible with rustc's landing pads
//!   (export it as `rust_eh_personality` from the kernel binary), driven by the
//!   [`crate::lsda`] parser.
//! - [`catch_unwind`]: a catch point made of a small assembly trampoline
//!   (`arch::x86_64::clew_x86_64_catch`). [`begin_panic`]/[`resume_unwind`] run a forced
//!   unwind whose stop function stops at the innermost catch point's frame, recognised by
//!   its return address, never by counting frames. Drops run on the way: the personality
//!   enters every cleanup landing pad, which resumes through `_Unwind_Resume`.
//! - [`set_unwinding_failed_hook`]: what happens when no catch point is found (the end
//!   of the stack) or unwinding fails, e.g. the kernel kills the task.
//! - A panic while panicking (the same in-flight [`Exception`] raised again, e.g. by a
//!   `Drop` during unwinding) is detected and reported to the hook, not deadlocked.
//! - [`write_backtrace`]: for a `#[panic_handler]`, prints the current stack to any
//!   `core::fmt::Write` without allocating, symbolized through a callback.

use core::ffi::{c_int, c_void};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::x86_64::{self, Regs};
use crate::itanium::{
    self, Action, ReasonCode, UA_CLEANUP_PHASE, UA_END_OF_STACK, UA_FORCE_UNWIND, UA_SEARCH_PHASE,
    URC_CONTINUE_UNWIND, URC_END_OF_STACK, URC_FATAL_PHASE1_ERROR, URC_FATAL_PHASE2_ERROR,
    URC_HANDLER_FOUND, URC_INSTALL_CONTEXT, URC_NO_REASON, UnwindContext, UnwindException,
};
use crate::lsda::{EhAction, Lsda, LsdaBases};
use crate::{Registers, UnwindCache};

/// The exception class of clew's own exceptions: "CLEW" "RUST".
pub const EXCEPTION_CLASS: u64 = u64::from_be_bytes(*b"CLEWRUST");

/// Why unwinding could not reach a catch point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindFailure {
    /// The walk reached the end of the stack without a catch point.
    EndOfStack,
    /// The same exception was raised again while in flight: a panic while panicking.
    DoublePanic,
    /// A personality or the walk failed (an `_Unwind_Reason_Code`).
    Fatal(i32),
}

/// A hook that must not return: the kernel kills the task, or halts.
pub type UnwindingFailedHook = fn(UnwindFailure, *mut UnwindException) -> !;

static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Sets what happens when unwinding cannot reach a catch point.
pub fn set_unwinding_failed_hook(hook: UnwindingFailedHook) {
    HOOK.store(hook as usize, Ordering::SeqCst);
}

/// Runs the unwinding-failed hook (spins forever when none is set). `_Unwind_Resume`
/// calls it when resuming one of clew's exceptions fails.
pub fn unwinding_failed(why: UnwindFailure, exc: *mut UnwindException) -> ! {
    let h = HOOK.load(Ordering::SeqCst);
    if h != 0 {
        // SAFETY: only `set_unwinding_failed_hook` stores here, a valid hook.
        let hook: UnwindingFailedHook = unsafe { core::mem::transmute(h) };
        hook(why, exc);
    }
    // No hook: nothing sensible is left to do on this thread.
    loop {
        core::hint::spin_loop();
    }
}

/// An exception with a value: the header every unwinder sees, then the payload.
#[repr(C)]
pub struct Exception<T> {
    header: UnwindException,
    in_flight: AtomicBool,
    pub value: T,
}

impl<T> Exception<T> {
    pub const fn new(value: T) -> Self {
        Exception {
            header: UnwindException {
                exception_class: EXCEPTION_CLASS,
                exception_cleanup: None,
                private_1: 0,
                private_2: 0,
            },
            in_flight: AtomicBool::new(false),
            value,
        }
    }

    /// The header, as [`catch_unwind`] returns it.
    pub fn header(&mut self) -> *mut UnwindException {
        &mut self.header
    }

    /// Recovers the exception from a header [`catch_unwind`] returned, and marks it no
    /// longer in flight. `None` for foreign exceptions.
    ///
    /// # Safety
    /// `header` must come from an `Exception<T>` of this very `T`.
    pub unsafe fn from_header<'a>(header: *mut UnwindException) -> Option<&'a mut Self> {
        // SAFETY: the caller promises the type; the class check rejects foreign ones.
        unsafe {
            if (*header).exception_class != EXCEPTION_CLASS {
                return None;
            }
            let e = &mut *(header as *mut Self);
            e.in_flight.store(false, Ordering::SeqCst);
            Some(e)
        }
    }
}

/// Runs `f`; if an unwind started by [`begin_panic`]/[`resume_unwind`] reaches this
/// point, returns the exception's header instead.
pub fn catch_unwind<R, F: FnOnce() -> R>(f: F) -> Result<R, *mut UnwindException> {
    struct Data<F, R> {
        f: core::mem::ManuallyDrop<F>,
        r: core::mem::MaybeUninit<R>,
    }
    unsafe extern "C-unwind" fn call<F: FnOnce() -> R, R>(data: *mut u8) {
        // SAFETY: `data` is the `Data` below; `f` is taken exactly once.
        unsafe {
            let data = &mut *(data as *mut Data<F, R>);
            let f = core::mem::ManuallyDrop::take(&mut data.f);
            data.r.write(f());
        }
    }
    let mut data = Data {
        f: core::mem::ManuallyDrop::new(f),
        r: core::mem::MaybeUninit::uninit(),
    };
    // SAFETY: the trampoline calls `call` with `data`, and returns non-null only when an
    // unwind stopped at it (then `f` was consumed by the unwound call and `r` is unset).
    unsafe {
        let exc = x86_64::clew_x86_64_catch((&raw mut data).cast(), call::<F, R>);
        if exc.is_null() {
            Ok(data.r.assume_init())
        } else {
            Err(exc.cast())
        }
    }
}

/// Starts unwinding with `exc` towards the innermost [`catch_unwind`]. Never returns: if
/// no catch point is found, the unwinding-failed hook runs.
///
/// # Safety
/// `exc` must stay valid until it is caught.
#[inline(never)]
pub unsafe fn begin_panic<T>(exc: &mut Exception<T>) -> ! {
    let regs = Regs::capture();
    if exc.in_flight.swap(true, Ordering::SeqCst) {
        unwinding_failed(UnwindFailure::DoublePanic, &mut exc.header);
    }
    // SAFETY: forwarded.
    unsafe { unwind_to_catch(regs, &mut exc.header) }
}

/// Continues unwinding a caught exception to the next [`catch_unwind`] out.
///
/// # Safety
/// As for [`begin_panic`].
#[inline(never)]
pub unsafe fn resume_unwind(exc: *mut UnwindException) -> ! {
    let regs = Regs::capture();
    // SAFETY: forwarded.
    unsafe { unwind_to_catch(regs, exc) }
}

unsafe fn unwind_to_catch(regs: Regs, exc: *mut UnwindException) -> ! {
    // SAFETY: a forced unwind whose stop function is `stop_at_catch`.
    let code = unsafe { itanium::forced_unwind(regs, exc, stop_at_catch, core::ptr::null_mut()) };
    let why = if code == URC_END_OF_STACK {
        UnwindFailure::EndOfStack
    } else {
        UnwindFailure::Fatal(code)
    };
    unwinding_failed(why, exc)
}

/// The stop function of [`begin_panic`]: stops at the frame of the innermost catch
/// trampoline (its return address is `clew_x86_64_catch_ret`) and resumes there.
unsafe extern "C" fn stop_at_catch(
    _version: c_int,
    actions: Action,
    _class: u64,
    exc: *mut UnwindException,
    ctx: *mut UnwindContext,
    _arg: *mut c_void,
) -> ReasonCode {
    if actions & UA_END_OF_STACK != 0 || ctx.is_null() {
        // No catch point: also reached here when a cleanup resumed the unwind through
        // `_Unwind_Resume`, so the hook runs whichever way the walk got here.
        unwinding_failed(UnwindFailure::EndOfStack, exc);
    }
    // SAFETY: a live context from the walk; the labels are symbols of the trampoline.
    unsafe {
        let ctx = &mut *ctx;
        if ctx.regs.pc() == &raw const x86_64::clew_x86_64_catch_ret as u64 {
            ctx.regs
                .set_pc(&raw const x86_64::clew_x86_64_catch_landing as u64);
            ctx.regs.set(Regs::RAX, exc as u64);
            return URC_INSTALL_CONTEXT;
        }
    }
    URC_NO_REASON
}

/// A personality routine for code compiled by rustc (`-C panic=unwind`): enters cleanup
/// landing pads (drops) in phase 2 and reports catch/filter landing pads as handlers.
/// Export it as `rust_eh_personality` from a no_std kernel.
///
/// # Safety
/// Called by the unwinder with a live context and exception.
pub unsafe extern "C" fn rust_personality(
    version: c_int,
    actions: Action,
    _class: u64,
    exc: *mut UnwindException,
    ctx: *mut UnwindContext,
) -> ReasonCode {
    if version != 1 || ctx.is_null() {
        return URC_FATAL_PHASE1_ERROR;
    }
    // SAFETY: a live context from the unwinder.
    let ctx = unsafe { &mut *ctx };
    let lsda = ctx.lsda();
    if lsda == 0 {
        return URC_CONTINUE_UNWIND;
    }
    let ip = if ctx.exact_pc {
        ctx.regs.pc()
    } else {
        ctx.regs.pc() - 1
    };
    // SAFETY: the LSDA lives in the code's read-only data (`.gcc_except_table`), which is
    // followed by more mapped data; the parser reads only what the tables declare.
    let bytes = unsafe { core::slice::from_raw_parts(lsda as *const u8, LSDA_WINDOW) };
    let action = Lsda::parse(
        bytes,
        lsda,
        LsdaBases {
            func_start: ctx.region_start(),
            ..Default::default()
        },
    )
    .and_then(|l| l.eh_action(ip));
    let search = actions & UA_SEARCH_PHASE != 0;
    match (action, search) {
        (Err(_), true) => URC_FATAL_PHASE1_ERROR,
        (Err(_), false) => URC_FATAL_PHASE2_ERROR,
        (Ok(EhAction::None | EhAction::Cleanup(_)), true) => URC_CONTINUE_UNWIND,
        (Ok(EhAction::Catch(_) | EhAction::Filter(_)), true) => URC_HANDLER_FOUND,
        (Ok(EhAction::Terminate), true) => URC_FATAL_PHASE1_ERROR,
        (Ok(EhAction::None), false) => URC_CONTINUE_UNWIND,
        (Ok(EhAction::Filter(_)), false) if actions & UA_FORCE_UNWIND != 0 => URC_CONTINUE_UNWIND,
        (Ok(EhAction::Cleanup(lpad) | EhAction::Catch(lpad) | EhAction::Filter(lpad)), false) => {
            debug_assert!(actions & UA_CLEANUP_PHASE != 0);
            ctx.regs.set(Regs::RAX, exc as u64);
            ctx.regs.set(Regs::RDX, 0);
            ctx.regs.set_pc(lpad);
            URC_INSTALL_CONTEXT
        }
        (Ok(EhAction::Terminate), false) => URC_FATAL_PHASE2_ERROR,
    }
}

/// Writes a name and location for a PC, for [`write_backtrace`].
pub type SymbolizeFn<'a> = &'a dyn Fn(usize, &mut dyn fmt::Write) -> fmt::Result;

/// How many bytes from an LSDA's start the personality may read.
const LSDA_WINDOW: usize = 4096;

/// Writes the current stack (innermost first, starting in this function) to `w`,
/// one frame a line, without allocating: for a `#[panic_handler]` printing to a serial
/// port. `symbolize` may add a name and location for a PC (given `pc - 1` for return
/// addresses); without it, PCs are printed bare. Uses `cache` when given.
///
/// # Safety
/// The stack must be sane (it is read unchecked, as a panicking kernel's must be).
#[inline(never)]
pub unsafe fn write_backtrace(
    w: &mut dyn fmt::Write,
    cache: Option<&mut UnwindCache>,
    symbolize: Option<SymbolizeFn<'_>>,
) -> fmt::Result {
    let mut pcs = [0usize; 64];
    // SAFETY: forwarded.
    let n = unsafe { crate::backtrace_unchecked(&mut pcs, cache) };
    for (i, &pc) in pcs[..n].iter().enumerate() {
        write!(w, "  #{i:<2} {pc:#018x}")?;
        if let Some(s) = symbolize {
            w.write_str("  ")?;
            s(pc.saturating_sub(1), w)?;
        }
        w.write_str("\n")?;
    }
    if n == pcs.len() {
        w.write_str("  ... (more frames)\n")?;
    }
    Ok(())
}
