//! The Itanium C++ ABI's base unwinding interface (the "level 1" `_Unwind_*` API that
//! libgcc_s exports), implemented on clew's registry and unwinder.
//!
//! Exceptions are raised in two phases. Phase 1 (search) walks the stack and asks each
//! frame's personality routine whether it handles the exception, without changing
//! anything; the handler frame's CFA is remembered in `private_2`. Phase 2 (cleanup) walks
//! again from the start, letting personalities run cleanups: a personality that answers
//! `INSTALL_CONTEXT` has set the landing pad (`SetIP`) and its arguments (`SetGR`), and
//! the unwinder resumes there with the frame's registers. A cleanup ends by calling
//! `_Unwind_Resume`, which continues phase 2 from its caller. A forced unwind (a thread
//! cancellation, a kernel killing a task) runs phase 2 only, asking a stop function at
//! every frame.
//!
//! The `extern "C"` symbols live in the `clew-unwind` crate (the preloadable
//! `libclew_unwind.so`); these are the Rust functions behind them, usable by a no_std
//! kernel with its own personality. Nothing here allocates or takes a lock.

use core::ffi::{c_int, c_void};

use crate::arch::x86_64::Regs;
use crate::unwind::FdeInfo;
use crate::{LiveMemory, ModuleProvider, Native, Registers, UnwindCache, Unwinder};

/// `_Unwind_Reason_Code`.
pub type ReasonCode = c_int;
pub const URC_NO_REASON: ReasonCode = 0;
pub const URC_FOREIGN_EXCEPTION_CAUGHT: ReasonCode = 1;
pub const URC_FATAL_PHASE2_ERROR: ReasonCode = 2;
pub const URC_FATAL_PHASE1_ERROR: ReasonCode = 3;
pub const URC_NORMAL_STOP: ReasonCode = 4;
pub const URC_END_OF_STACK: ReasonCode = 5;
pub const URC_HANDLER_FOUND: ReasonCode = 6;
pub const URC_INSTALL_CONTEXT: ReasonCode = 7;
pub const URC_CONTINUE_UNWIND: ReasonCode = 8;

/// `_Unwind_Action` bits.
pub type Action = c_int;
pub const UA_SEARCH_PHASE: Action = 1;
pub const UA_CLEANUP_PHASE: Action = 2;
pub const UA_HANDLER_FRAME: Action = 4;
pub const UA_FORCE_UNWIND: Action = 8;
pub const UA_END_OF_STACK: Action = 16;

/// `struct _Unwind_Exception`: the header of every language's exception object.
#[repr(C)]
pub struct UnwindException {
    pub exception_class: u64,
    pub exception_cleanup: Option<unsafe extern "C" fn(ReasonCode, *mut UnwindException)>,
    /// 0 for a raised exception; the stop function for a forced unwind.
    pub private_1: u64,
    /// The handler frame's CFA for a raised exception; the stop argument for a forced unwind.
    pub private_2: u64,
}

/// A personality routine (`__gxx_personality_v0`, `rust_eh_personality`).
pub type Personality = unsafe extern "C" fn(
    c_int,
    Action,
    u64,
    *mut UnwindException,
    *mut UnwindContext,
) -> ReasonCode;
/// A forced unwind's stop function.
pub type StopFn = unsafe extern "C" fn(
    c_int,
    Action,
    u64,
    *mut UnwindException,
    *mut UnwindContext,
    *mut c_void,
) -> ReasonCode;
/// `_Unwind_Backtrace`'s callback.
pub type TraceFn = unsafe extern "C" fn(*mut UnwindContext, *mut c_void) -> ReasonCode;

/// `struct _Unwind_Context`: one frame as personalities and trace callbacks see it.
#[derive(Clone, Debug)]
pub struct UnwindContext {
    /// The frame's registers (the PC is its return address unless `exact_pc`).
    pub regs: Regs,
    /// The frame's CFA (`_Unwind_GetCFA`).
    pub cfa: u64,
    /// The PC is exact, not a return address (`_Unwind_GetIPInfo`'s `ip_before_insn`).
    pub exact_pc: bool,
    /// The frame's FDE details (LSDA, region start), when it has an FDE.
    pub info: Option<FdeInfo>,
}

impl UnwindContext {
    /// `_Unwind_GetLanguageSpecificData`.
    pub fn lsda(&self) -> u64 {
        self.info.and_then(|i| i.lsda).unwrap_or(0)
    }
    /// `_Unwind_GetRegionStart`.
    pub fn region_start(&self) -> u64 {
        self.info.map_or(0, |i| i.func_start)
    }
}

static PROVIDER: spin::Once<&'static dyn ModuleProvider> = spin::Once::new();

/// Sets the provider asked for PCs the registry does not know, for every walk of this
/// module (on Linux: `os::linux::DlIteratePhdr`, finding objects `dlopen`ed later).
/// The first call wins.
pub fn set_module_provider(provider: &'static dyn ModuleProvider) {
    PROVIDER.call_once(|| provider);
}

fn unwinder() -> Unwinder<'static, Native> {
    let unwinder = Unwinder::<Native>::new(crate::global());
    match PROVIDER.get() {
        Some(p) => unwinder.with_provider(*p),
        None => unwinder,
    }
}

/// `_Unwind_Find_FDE` / `_Unwind_FindEnclosingFunction`: the FDE covering `pc`, from the
/// registry or the module provider.
pub fn find_fde(pc: usize) -> Option<FdeInfo> {
    // SAFETY: indirect personality pointers point into the loaded object's data.
    let mem = unsafe { LiveMemory::unchecked() };
    unwinder().fde_info(pc, &mem)
}

/// What to do with each frame of a walk.
enum Visit {
    Continue,
    Stop(ReasonCode),
    Install,
}

/// Walks from `regs` (a context captured in the frame of an entry point, which is
/// skipped: the walk starts at its caller), calling `visit` with each frame's context,
/// then with `None` at the end of the stack. Returns the registers to install when a
/// visit says so, else the code a visit stopped with.
fn walk(
    regs: Regs,
    cache: Option<&mut UnwindCache>,
    mut visit: impl FnMut(Option<&mut UnwindContext>) -> Visit,
) -> Result<Regs, ReasonCode> {
    // SAFETY: a thread raising an exception trusts its own stack, as libgcc does.
    let mem = unsafe { LiveMemory::unchecked() };
    let unwinder = unwinder();
    let mut frames = unwinder.frames(regs, false, &mem, cache);
    // The entry point's own frame.
    match frames.next() {
        Some(Ok(f)) if f.cfa.is_some() => {}
        _ => return Err(URC_FATAL_PHASE1_ERROR),
    }
    loop {
        let regs = *frames.registers();
        let mut ctx = match frames.next() {
            Some(Ok(frame)) => UnwindContext {
                regs,
                cfa: frame.cfa.unwrap_or(0),
                exact_pc: frame.exact_pc,
                info: frames.fde_info().copied(),
            },
            Some(Err(_)) => return Err(URC_FATAL_PHASE2_ERROR),
            None => {
                return match visit(None) {
                    Visit::Stop(code) => Err(code),
                    _ => Err(URC_END_OF_STACK),
                };
            }
        };
        match visit(Some(&mut ctx)) {
            Visit::Continue => {}
            Visit::Stop(code) => return Err(code),
            Visit::Install => return Ok(ctx.regs),
        }
    }
}

/// Phase 1: finds the handler frame and records its CFA in `private_2`.
///
/// # Safety
/// `exc` must be a valid exception object; `regs` captured in the caller's frame.
unsafe fn search(regs: Regs, exc: *mut UnwindException) -> ReasonCode {
    // SAFETY: the caller passes a valid exception object.
    let class = unsafe { (*exc).exception_class };
    let mut found = None;
    let r = walk(regs, None, |ctx| {
        let Some(ctx) = ctx else {
            return Visit::Stop(URC_END_OF_STACK);
        };
        let Some(personality) = ctx.info.and_then(|i| i.personality) else {
            return Visit::Continue;
        };
        // SAFETY: the FDE names this function as the frame's personality routine.
        let p: Personality = unsafe { core::mem::transmute(personality as usize) };
        // SAFETY: a personality call as the ABI specifies it.
        match unsafe { p(1, UA_SEARCH_PHASE, class, exc, ctx) } {
            URC_CONTINUE_UNWIND => Visit::Continue,
            URC_HANDLER_FOUND => {
                found = Some(ctx.cfa);
                Visit::Stop(URC_HANDLER_FOUND)
            }
            _ => Visit::Stop(URC_FATAL_PHASE1_ERROR),
        }
    });
    match (r, found) {
        (_, Some(cfa)) => {
            // SAFETY: as above.
            unsafe {
                (*exc).private_1 = 0;
                (*exc).private_2 = cfa;
            }
            URC_HANDLER_FOUND
        }
        (Err(code), None) => code,
        (Ok(_), None) => URC_FATAL_PHASE1_ERROR,
    }
}

/// Phase 2: runs cleanups up to the handler frame (or, forced, to wherever the stop
/// function says) and returns the registers of the landing pad to enter.
///
/// # Safety
/// As for [`search`].
unsafe fn cleanup(regs: Regs, exc: *mut UnwindException) -> Result<Regs, ReasonCode> {
    // SAFETY: the caller passes a valid exception object.
    let (class, private_1, private_2) =
        unsafe { ((*exc).exception_class, (*exc).private_1, (*exc).private_2) };
    let forced = private_1 != 0;
    walk(regs, None, |mut ctx| {
        if forced {
            // SAFETY: `_Unwind_ForcedUnwind` stored the stop function in `private_1`.
            let stop: StopFn = unsafe { core::mem::transmute(private_1 as usize) };
            let (actions, ctx_ptr) = match ctx {
                Some(ref mut c) => (UA_FORCE_UNWIND | UA_CLEANUP_PHASE, &raw mut **c),
                None => (
                    UA_FORCE_UNWIND | UA_CLEANUP_PHASE | UA_END_OF_STACK,
                    core::ptr::null_mut(),
                ),
            };
            // SAFETY: a stop-function call as the ABI specifies it.
            match unsafe { stop(1, actions, class, exc, ctx_ptr, private_2 as *mut c_void) } {
                URC_NO_REASON => {}
                // clew's extension: a stop function may set up the context (SetIP/SetGR)
                // and have it installed, which is how `panic::catch_unwind` catches.
                URC_INSTALL_CONTEXT if ctx.is_some() => return Visit::Install,
                _ => return Visit::Stop(URC_FATAL_PHASE2_ERROR),
            }
        }
        let Some(ctx) = ctx else {
            return Visit::Stop(URC_END_OF_STACK);
        };
        let handler = !forced && ctx.cfa == private_2;
        if let Some(personality) = ctx.info.and_then(|i| i.personality) {
            let mut actions = UA_CLEANUP_PHASE;
            if handler {
                actions |= UA_HANDLER_FRAME;
            }
            if forced {
                actions |= UA_FORCE_UNWIND;
            }
            // SAFETY: the FDE names this function as the frame's personality routine.
            let p: Personality = unsafe { core::mem::transmute(personality as usize) };
            // SAFETY: a personality call as the ABI specifies it.
            match unsafe { p(1, actions, class, exc, ctx) } {
                URC_INSTALL_CONTEXT => return Visit::Install,
                URC_CONTINUE_UNWIND if !handler => {}
                _ => return Visit::Stop(URC_FATAL_PHASE2_ERROR),
            }
        }
        if handler {
            Visit::Stop(URC_FATAL_PHASE2_ERROR)
        } else {
            Visit::Continue
        }
    })
}

/// `_Unwind_RaiseException`: `regs` must be captured in the calling entry point's frame.
/// Returns only on failure (`END_OF_STACK`: no handler; `FATAL_PHASE1_ERROR`).
///
/// # Safety
/// `exc` must be a valid exception object that outlives the unwind.
pub unsafe fn raise_exception(regs: Regs, exc: *mut UnwindException) -> ReasonCode {
    // SAFETY: forwarded.
    match unsafe { search(regs, exc) } {
        URC_HANDLER_FOUND => {}
        code => return code,
    }
    // SAFETY: forwarded.
    match unsafe { cleanup(regs, exc) } {
        // SAFETY: the personality set up a landing pad in a live frame of this thread.
        Ok(target) => unsafe { target.restore() },
        Err(code) => code,
    }
}

/// `_Unwind_Resume` (and `_Unwind_Resume_or_Rethrow` of a forced unwind): continues
/// phase 2 from the frame that called the entry point. Returns only on failure.
///
/// # Safety
/// As for [`raise_exception`].
pub unsafe fn resume(regs: Regs, exc: *mut UnwindException) -> ReasonCode {
    // SAFETY: forwarded.
    match unsafe { cleanup(regs, exc) } {
        // SAFETY: as in `raise_exception`.
        Ok(target) => unsafe { target.restore() },
        Err(code) => code,
    }
}

/// `_Unwind_ForcedUnwind`. Returns only on failure or when the stop function ends it at
/// the end of the stack.
///
/// # Safety
/// As for [`raise_exception`]; `stop` must be a valid stop function.
pub unsafe fn forced_unwind(
    regs: Regs,
    exc: *mut UnwindException,
    stop: StopFn,
    stop_arg: *mut c_void,
) -> ReasonCode {
    // SAFETY: the caller passes a valid exception object.
    unsafe {
        (*exc).private_1 = stop as usize as u64;
        (*exc).private_2 = stop_arg as u64;
    }
    // SAFETY: forwarded.
    unsafe { resume(regs, exc) }
}

/// `_Unwind_Backtrace`: calls `trace` for every frame from the entry point's caller on.
/// Like libgcc, reports the outermost frame's undefined return address as a last frame
/// with IP 0.
///
/// # Safety
/// `trace` must be a valid callback for `arg`.
pub unsafe fn backtrace(
    regs: Regs,
    cache: Option<&mut UnwindCache>,
    trace: TraceFn,
    arg: *mut c_void,
) -> ReasonCode {
    let mut last: Option<UnwindContext> = None;
    let r = walk(regs, cache, |ctx| match ctx {
        Some(ctx) => {
            last = Some(ctx.clone());
            // SAFETY: the caller's callback, with a live context.
            match unsafe { trace(ctx, arg) } {
                URC_NO_REASON => Visit::Continue,
                _ => Visit::Stop(URC_FATAL_PHASE1_ERROR),
            }
        }
        None => {
            // The walk ended after a frame that was unwound (its return address was
            // undefined or 0), not at a frame without unwind information: libgcc reports
            // one more frame with IP 0 then.
            if let Some(mut l) = last.take().filter(|l| l.cfa != 0) {
                l.regs.set_pc(0);
                l.info = None;
                l.exact_pc = false;
                // SAFETY: as above.
                if unsafe { trace(&mut l, arg) } != URC_NO_REASON {
                    return Visit::Stop(URC_FATAL_PHASE1_ERROR);
                }
            }
            Visit::Stop(URC_END_OF_STACK)
        }
    });
    match r {
        Err(code) => code,
        Ok(_) => URC_FATAL_PHASE1_ERROR,
    }
}
