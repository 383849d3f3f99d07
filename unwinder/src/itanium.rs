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
use core::ops::ControlFlow;

use crate::arch::x86_64::Regs;
use crate::unwind::FdeInfo;
use crate::{FrameKind, LiveMemory, ModuleProvider, Native, Registers, UnwindCache, Unwinder};

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
///
/// It starts with a tag ([`UnwindContext::is_clews`]), so that the ABI accessors can
/// tell clew's contexts from another unwinder's: with clew preloaded, glibc still cancels
/// threads through its private handle on libgcc_s, whose contexts then reach the
/// personality and, through it, clew's accessors.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct UnwindContext {
    tag: u64,
    /// The frame's registers (the PC is its return address unless `exact_pc`).
    pub regs: Regs,
    /// The frame's own CFA, which identifies the handler frame between the phases.
    /// (`_Unwind_GetCFA` returns libgcc's value instead: the callee's CFA, which is the
    /// frame's stack pointer, `regs.sp()`.)
    pub cfa: u64,
    /// The PC is exact, not a return address (`_Unwind_GetIPInfo`'s `ip_before_insn`).
    pub exact_pc: bool,
    /// The frame's FDE details (LSDA, region start), when it has an FDE.
    pub info: Option<FdeInfo>,
}

/// "CLEWCTX" + 1: the first word of every clew context.
const CONTEXT_TAG: u64 = u64::from_be_bytes(*b"CLEWCTX\x01");

impl UnwindContext {
    /// A context for the frame with these registers.
    pub fn new(regs: Regs, cfa: u64, exact_pc: bool, info: Option<FdeInfo>) -> Self {
        UnwindContext {
            tag: CONTEXT_TAG,
            regs,
            cfa,
            exact_pc,
            info,
        }
    }

    /// Whether `ctx` points to a context clew made (and not, say, libgcc's).
    ///
    /// # Safety
    /// `ctx` must point to at least 8 readable bytes (any unwinder's context does).
    pub unsafe fn is_clews(ctx: *const UnwindContext) -> bool {
        // SAFETY: the caller promises a readable first word.
        !ctx.is_null() && unsafe { ctx.cast::<u64>().read() } == CONTEXT_TAG
    }

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

/// `_Unwind_Find_FDE`: the address of the FDE covering `pc` and its function's start.
/// For a registered module both come from the registry's index, without parsing the FDE.
pub fn find_fde_address(pc: usize) -> Option<(u64, u64)> {
    {
        let guard = crate::global().pin();
        if let Some((module, entry)) = guard.find_fde(pc) {
            let fde = module.eh_frame_start() as u64 + u64::from(entry.offset);
            let start = module.text().start as u64 + u64::from(entry.start);
            return Some((fde, start));
        }
    }
    find_fde(pc).map(|f| (f.fde_address, f.func_start))
}

const INFO_BITS: u32 = 8;
const INFO_SIZE: usize = 1 << INFO_BITS;

/// What a thread keeps between walks so that raising an exception does not parse the
/// FDEs and evaluate the CFI of frames it has walked before: the compiled rules
/// ([`UnwindCache`], shared with `_Unwind_Backtrace`) and, for the personality calls,
/// the FDE details (personality, LSDA, region start) of registered modules' frames by
/// lookup PC. Like the rules, the details are forgotten when the registry's generation
/// moves.
pub struct WalkCache {
    pub rules: UnwindCache,
    infos: InfoCache,
}

/// A direct-mapped cache of [`FdeInfo`] keyed by lookup PC (0: empty).
struct InfoCache {
    generation: u64,
    entries: [(u64, FdeInfo); INFO_SIZE],
}

impl Default for WalkCache {
    fn default() -> Self {
        Self::new()
    }
}

impl WalkCache {
    pub const fn new() -> Self {
        const EMPTY: (u64, FdeInfo) = (
            0,
            FdeInfo {
                func_start: 0,
                func_end: 0,
                personality: None,
                lsda: None,
                fde_address: 0,
            },
        );
        WalkCache {
            rules: UnwindCache::new(),
            infos: InfoCache {
                generation: 0,
                entries: [EMPTY; INFO_SIZE],
            },
        }
    }
}

impl InfoCache {
    #[inline]
    fn slot(pc: u64) -> usize {
        (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (u64::BITS - INFO_BITS)) as usize
    }

    fn validate(&mut self, generation: u64) {
        if self.generation != generation {
            self.entries.iter_mut().for_each(|e| e.0 = 0);
            self.generation = generation;
        }
    }

    /// The FDE details of the frame at lookup PC `pc`: cached, else looked up and cached
    /// (its rule came from the rule cache, so the walk did not read its FDE).
    fn get(&mut self, unwinder: &Unwinder<'static, Native>, pc: u64) -> Option<FdeInfo> {
        let e = &self.entries[Self::slot(pc)];
        if e.0 == pc && pc != 0 {
            return Some(e.1);
        }
        // SAFETY: as in `find_fde`.
        let mem = unsafe { LiveMemory::unchecked() };
        let info = unwinder.fde_info(pc as usize, &mem)?;
        self.insert(pc, info);
        Some(info)
    }

    #[inline]
    fn insert(&mut self, pc: u64, info: FdeInfo) {
        self.entries[Self::slot(pc)] = (pc, info);
    }
}

/// What to do with each frame of a walk.
enum Visit {
    Continue,
    Stop(ReasonCode),
    Install,
}

/// What a walk shows its visitor.
enum Event<'a> {
    /// A frame, to be visited.
    Frame(&'a mut UnwindContext),
    /// The end of the stack. The context still holds the last frame's CFA (0 if there
    /// was none, or it had no CFI) and the registers its unwinding produced.
    End(&'a mut UnwindContext),
}

/// The caches a walk uses: none, the rules only (`_Unwind_Backtrace`), or the rules and
/// the FDE details (raising an exception: the personality needs them at every frame).
enum Caches<'c> {
    None,
    Rules(&'c mut UnwindCache),
    All(&'c mut WalkCache),
}

/// Walks from `regs` (a context captured in the frame of an entry point, which is
/// skipped: the walk starts at its caller), calling `visit` with each frame's context,
/// then at the end of the stack. Returns the registers to install when a visit says so,
/// else the code a visit stopped with. One context serves every frame (no copy of it
/// per frame).
fn walk(
    regs: Regs,
    caches: Caches<'_>,
    mut visit: impl FnMut(Event<'_>) -> Visit,
) -> Result<Regs, ReasonCode> {
    // SAFETY: a thread raising an exception trusts its own stack, as libgcc does.
    let mem = unsafe { LiveMemory::unchecked() };
    let unwinder = unwinder();
    let (rules, mut infos) = match caches {
        Caches::None => (None, None),
        Caches::Rules(r) => (Some(r), None),
        Caches::All(c) => {
            c.infos.validate(crate::global().generation());
            (Some(&mut c.rules), Some(&mut c.infos))
        }
    };
    let mut frames = unwinder.frames(regs, false, &mem, rules);
    // The entry point's own frame (through its cached rule when it has one).
    if frames.step_cached().is_none() {
        match frames.next() {
            Some(Ok(f)) if f.cfa.is_some() => {}
            _ => return Err(URC_FATAL_PHASE1_ERROR),
        }
    }
    // `ctx.regs` holds the registers of the frame to visit next: copied from the
    // iterator after a frame it stepped, stepped in place by `walk_cached`.
    let mut ctx = UnwindContext::new(*frames.registers(), 0, false, None);
    loop {
        // A backtrace (no FDE details needed) takes the cached-rule path where it can:
        // each frame is visited, then stepped.
        if infos.is_none() {
            let flow = frames.walk_cached(
                &mut ctx,
                |c| &mut c.regs,
                |c, cfa| {
                    c.cfa = cfa;
                    c.exact_pc = false;
                    c.info = None;
                    match visit(Event::Frame(c)) {
                        Visit::Continue => ControlFlow::Continue(()),
                        Visit::Stop(code) => ControlFlow::Break(Err(code)),
                        Visit::Install => ControlFlow::Break(Ok(c.regs)),
                    }
                },
            );
            if let ControlFlow::Break(r) = flow {
                return r;
            }
        }
        match frames.next() {
            Some(Ok(frame)) => {
                ctx.cfa = frame.cfa.unwrap_or(0);
                ctx.exact_pc = frame.exact_pc;
                ctx.info = frames.fde_info().copied();
                // Only registered modules' details are kept: the registry's generation
                // says when they go stale, while an object found by the provider may be
                // `dlclose`d behind the cache's back.
                match (infos.as_deref_mut(), frame.kind, ctx.info) {
                    (Some(c), FrameKind::Module(_), Some(info)) => {
                        c.insert(frame.lookup_pc(), info);
                    }
                    (Some(c), FrameKind::Module(_), None) => {
                        ctx.info = c.get(&unwinder, frame.lookup_pc());
                    }
                    (Some(_), FrameKind::Provided, None) => {
                        // SAFETY: as in `find_fde`.
                        let mem = unsafe { LiveMemory::unchecked() };
                        ctx.info = unwinder.fde_info(frame.lookup_pc() as usize, &mem);
                    }
                    _ => {}
                }
            }
            Some(Err(_)) => return Err(URC_FATAL_PHASE2_ERROR),
            None => {
                return match visit(Event::End(&mut ctx)) {
                    Visit::Stop(code) => Err(code),
                    _ => Err(URC_END_OF_STACK),
                };
            }
        }
        match visit(Event::Frame(&mut ctx)) {
            Visit::Continue => ctx.regs = *frames.registers(),
            Visit::Stop(code) => return Err(code),
            Visit::Install => return Ok(ctx.regs),
        }
    }
}

/// Phase 1: finds the handler frame and records its CFA in `private_2`.
///
/// # Safety
/// `exc` must be a valid exception object; `regs` captured in the caller's frame.
unsafe fn search(regs: Regs, exc: *mut UnwindException, caches: Caches<'_>) -> ReasonCode {
    // SAFETY: the caller passes a valid exception object.
    let class = unsafe { (*exc).exception_class };
    let mut found = None;
    let r = walk(regs, caches, |event| {
        let Event::Frame(ctx) = event else {
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
unsafe fn cleanup(
    regs: Regs,
    exc: *mut UnwindException,
    caches: Caches<'_>,
) -> Result<Regs, ReasonCode> {
    // SAFETY: the caller passes a valid exception object.
    let (class, private_1, private_2) =
        unsafe { ((*exc).exception_class, (*exc).private_1, (*exc).private_2) };
    let forced = private_1 != 0;
    // A stop function may leave the walk by longjmp (glibc's thread cancellation does):
    // a forced unwind borrows no cache.
    let caches = if forced { Caches::None } else { caches };
    walk(regs, caches, |mut event| {
        if forced {
            // SAFETY: `_Unwind_ForcedUnwind` stored the stop function in `private_1`.
            let stop: StopFn = unsafe { core::mem::transmute(private_1 as usize) };
            let (actions, ctx_ptr) = match &mut event {
                Event::Frame(c) => (UA_FORCE_UNWIND | UA_CLEANUP_PHASE, &raw mut **c),
                Event::End(_) => (
                    UA_FORCE_UNWIND | UA_CLEANUP_PHASE | UA_END_OF_STACK,
                    core::ptr::null_mut(),
                ),
            };
            // SAFETY: a stop-function call as the ABI specifies it.
            match unsafe { stop(1, actions, class, exc, ctx_ptr, private_2 as *mut c_void) } {
                URC_NO_REASON => {}
                // clew's extension: a stop function may set up the context (SetIP/SetGR)
                // and have it installed, which is how `panic::catch_unwind` catches.
                URC_INSTALL_CONTEXT if matches!(event, Event::Frame(_)) => {
                    return Visit::Install;
                }
                _ => return Visit::Stop(URC_FATAL_PHASE2_ERROR),
            }
        }
        let Event::Frame(ctx) = event else {
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

fn caches(cache: Option<&mut WalkCache>) -> Caches<'_> {
    match cache {
        Some(c) => Caches::All(c),
        None => Caches::None,
    }
}

/// `_Unwind_RaiseException` up to its landing pad: phases 1 and 2, returning the
/// registers to enter the landing pad with (`Regs::restore`), or the failure code.
/// `regs` must be captured in the calling entry point's frame. With `cache` (the
/// thread's), frames walked before cost a cache lookup instead of an FDE parse and a CFI
/// evaluation; it is not used once this returns, so the caller may release it before
/// entering the landing pad.
///
/// # Safety
/// `exc` must be a valid exception object that outlives the unwind.
pub unsafe fn raise_exception_target(
    regs: Regs,
    exc: *mut UnwindException,
    mut cache: Option<&mut WalkCache>,
) -> Result<Regs, ReasonCode> {
    // SAFETY: forwarded.
    match unsafe { search(regs, exc, caches(cache.as_deref_mut())) } {
        URC_HANDLER_FOUND => {}
        code => return Err(code),
    }
    // SAFETY: forwarded.
    unsafe { cleanup(regs, exc, caches(cache)) }
}

/// `_Unwind_Resume` up to the next landing pad, as [`raise_exception_target`]. A forced
/// unwind does not use `cache`.
///
/// # Safety
/// As for [`raise_exception_target`].
pub unsafe fn resume_target(
    regs: Regs,
    exc: *mut UnwindException,
    cache: Option<&mut WalkCache>,
) -> Result<Regs, ReasonCode> {
    // SAFETY: forwarded.
    unsafe { cleanup(regs, exc, caches(cache)) }
}

/// `_Unwind_RaiseException`: `regs` must be captured in the calling entry point's frame.
/// Returns only on failure (`END_OF_STACK`: no handler; `FATAL_PHASE1_ERROR`).
///
/// # Safety
/// `exc` must be a valid exception object that outlives the unwind.
pub unsafe fn raise_exception(regs: Regs, exc: *mut UnwindException) -> ReasonCode {
    // SAFETY: forwarded.
    match unsafe { raise_exception_target(regs, exc, None) } {
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
    match unsafe { resume_target(regs, exc, None) } {
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
/// with IP 0 (and the registers the unwinding of the frame before produced).
///
/// # Safety
/// `trace` must be a valid callback for `arg`.
pub unsafe fn backtrace(
    regs: Regs,
    cache: Option<&mut UnwindCache>,
    trace: TraceFn,
    arg: *mut c_void,
) -> ReasonCode {
    let caches = match cache {
        Some(c) => Caches::Rules(c),
        None => Caches::None,
    };
    let r = walk(regs, caches, |event| match event {
        Event::Frame(ctx) => {
            // SAFETY: the caller's callback, with a live context.
            match unsafe { trace(ctx, arg) } {
                URC_NO_REASON => Visit::Continue,
                _ => Visit::Stop(URC_FATAL_PHASE1_ERROR),
            }
        }
        Event::End(last) => {
            // The walk ended after a frame that was unwound (its return address was
            // undefined or 0), not at a frame without unwind information: libgcc reports
            // one more frame with IP 0 then.
            if last.cfa != 0 {
                last.regs.set_pc(0);
                last.info = None;
                last.exact_pc = false;
                // SAFETY: as above.
                if unsafe { trace(last, arg) } != URC_NO_REASON {
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
