//! # clew-unwind: clew as the process's unwinder
//!
//! Exports the unwinding ABI that libgcc_s exports (`_Unwind_RaiseException`,
//! `_Unwind_Resume`, `_Unwind_Backtrace`, the context accessors, `__register_frame` …),
//! implemented on [`clew_unwinder`]. Two ways to use it:
//!
//! - `LD_PRELOAD=target/release/libclew_unwind.so program`: every exception, panic and
//!   backtrace of an existing dynamically linked program goes through clew, and JIT code
//!   the program registers with `__register_frame` (Wasmtime does, once per module) lands
//!   in clew's registry.
//! - Statically: depend on this crate and call [`install`] once; the executable's own
//!   definitions then take precedence over libgcc_s's.
//!
//! The running program's objects are registered at load time (an `.init_array`
//! constructor) and again on first use.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::itanium::{
    self, ReasonCode, StopFn, TraceFn, UnwindContext, UnwindException, WalkCache,
};
use clew_unwinder::{Registers, compat, global, os::linux, panic};
use std::cell::RefCell;

/// Makes sure the running program's loaded objects are registered. Calling it also makes
/// the static linker keep this crate's definitions.
pub fn install() {
    linux::ensure_loaded_objects();
    itanium::set_module_provider(&linux::DlIteratePhdr);
}

extern "C" fn init() {
    install();
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

/// Contexts and exceptions of another unwinder.
///
/// With clew preloaded, glibc still unwinds cancelled threads (`pthread_cancel`,
/// `pthread_exit`) through its private handle on libgcc_s: libgcc's forced unwind then
/// calls the personality with libgcc's contexts, the personality calls the accessors
/// (which resolve to clew's), and the cleanups call `_Unwind_Resume` (clew's). Those
/// calls are handed to libgcc_s's own definitions.
mod foreign {
    use core::ffi::CStr;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::cell::Cell;

    use clew_unwinder::itanium::{UnwindContext, UnwindException};

    /// libgcc_s's own definition of `name` (cached in `slot`), if libgcc_s is loaded.
    pub fn libgcc(name: &CStr, slot: &AtomicUsize) -> Option<usize> {
        let cached = slot.load(Ordering::Relaxed);
        if cached != 0 {
            return Some(cached);
        }
        // SAFETY: plain loader queries; RTLD_NOLOAD never loads anything.
        let f = unsafe {
            let handle = libc::dlopen(
                c"libgcc_s.so.1".as_ptr(),
                libc::RTLD_LAZY | libc::RTLD_NOLOAD,
            );
            if handle.is_null() {
                return None;
            }
            let f = libc::dlsym(handle, name.as_ptr());
            libc::dlclose(handle);
            f as usize
        };
        if f == 0 {
            return None;
        }
        slot.store(f, Ordering::Relaxed);
        Some(f)
    }

    /// libgcc's definition of an accessor when `ctx` is not clew's.
    ///
    /// # Safety
    /// `ctx` is some unwinder's live context; `F` is the accessor's function type.
    pub unsafe fn accessor<F: Copy>(
        ctx: *const UnwindContext,
        name: &CStr,
        slot: &AtomicUsize,
    ) -> Option<F> {
        // SAFETY: every unwinder's context has a readable first word.
        if unsafe { UnwindContext::is_clews(ctx) } {
            return None;
        }
        match libgcc(name, slot) {
            // SAFETY: the symbol of that name, with the ABI's signature `F`.
            Some(f) => Some(unsafe { core::mem::transmute_copy::<usize, F>(&f) }),
            None => super::fatal_msg("a foreign unwind context, and no libgcc_s to hand it to"),
        }
    }

    std::thread_local! {
        /// Exceptions this thread's clew `_Unwind_ForcedUnwind` started (the last few).
        static FORCED: Cell<[usize; 4]> = const { Cell::new([0; 4]) };
    }

    pub fn note_forced(exc: *mut UnwindException) {
        let _ = FORCED.try_with(|f| {
            let mut v = f.get();
            v.rotate_right(1);
            v[0] = exc as usize;
            f.set(v);
        });
    }

    /// Whether `exc` is being force-unwound by another unwinder (libgcc, for glibc).
    ///
    /// # Safety
    /// `exc` is a valid exception object.
    pub unsafe fn is_foreign_forced(exc: *mut UnwindException) -> bool {
        // SAFETY: a valid exception object.
        let (forced, class) = unsafe { ((*exc).private_1 != 0, (*exc).exception_class) };
        forced
            && class != clew_unwinder::panic::EXCEPTION_CLASS
            && !FORCED
                .try_with(|f| f.get().contains(&(exc as usize)))
                .unwrap_or(false)
    }

    pub type Resume = unsafe extern "C" fn(*mut UnwindException) -> !;
    pub static RESUME: AtomicUsize = AtomicUsize::new(0);
}

/// Hands an accessor call to libgcc_s when `ctx` is not clew's context (see [`foreign`]).
macro_rules! forward_foreign {
    ($ctx:expr, $name:literal, $ty:ty, ($($arg:expr),*)) => {{
        static SLOT: AtomicUsize = AtomicUsize::new(0);
        // SAFETY: a live context of some unwinder, and libgcc's accessor of that name.
        if let Some(f) = unsafe { foreign::accessor::<$ty>($ctx, $name, &SLOT) } {
            return unsafe { f($($arg),*) };
        }
    }};
}

fn fatal_msg(what: &str) -> ! {
    eprintln!("clew-unwind: {what}; aborting");
    std::process::abort()
}

fn fatal(what: &str, code: ReasonCode) -> ! {
    // Unwinding failed where the ABI has no way to report it (`_Unwind_Resume`).
    eprintln!("clew-unwind: {what} failed ({code}); aborting");
    std::process::abort()
}

static RAISED: AtomicU64 = AtomicU64::new(0);

/// How many exceptions `_Unwind_RaiseException` has raised in this process: a way to
/// check that clew, not libgcc, is the unwinder.
pub fn raised() -> u64 {
    RAISED.load(Ordering::Relaxed)
}

/// # Safety
/// ABI entry point: `exc` is a valid exception object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_RaiseException(exc: *mut UnwindException) -> ReasonCode {
    let regs = Regs::capture();
    RAISED.fetch_add(1, Ordering::Relaxed);
    install();
    // SAFETY: forwarded ABI contract.
    let target = with_cache(|cache| unsafe { itanium::raise_exception_target(regs, exc, cache) });
    // SAFETY: the personality set up a landing pad in a live frame of this thread; the
    // cache is released.
    target.map_or_else(|code| code, |t| unsafe { t.restore() })
}

/// Runs `f` with this thread's walk cache (compiled rules and FDE details), or without one
/// when it is in use (a trace callback or a signal handler walking during a walk) or gone
/// (thread exit). `f` must return before a landing pad is entered: the cache stays
/// borrowed until then.
fn with_cache<R>(f: impl FnOnce(Option<&mut WalkCache>) -> R) -> R {
    std::thread_local! {
        static CACHE: RefCell<Option<Box<WalkCache>>> = const { RefCell::new(None) };
    }
    let mut f = Some(f);
    let cached = CACHE.try_with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        let cache = c.get_or_insert_with(|| Box::new(WalkCache::new()));
        Some((f.take()?)(Some(cache)))
    });
    match (cached, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(None),
        (_, None) => unreachable!("the walk ran"),
    }
}

/// # Safety
/// ABI entry point: called from a cleanup landing pad with the exception being unwound.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_Resume(exc: *mut UnwindException) -> ! {
    let regs = Regs::capture();
    // SAFETY: a valid exception object.
    if unsafe { foreign::is_foreign_forced(exc) } {
        match foreign::libgcc(c"_Unwind_Resume", &foreign::RESUME) {
            // SAFETY: libgcc's `_Unwind_Resume`, continuing its own forced unwind.
            Some(f) => unsafe { core::mem::transmute::<usize, foreign::Resume>(f)(exc) },
            None => fatal_msg("a foreign forced unwind, and no libgcc_s to hand it to"),
        }
    }
    // SAFETY: forwarded ABI contract.
    let code = unsafe { resume(regs, exc) };
    // SAFETY: a valid exception object.
    if unsafe { (*exc).exception_class } == panic::EXCEPTION_CLASS {
        panic::unwinding_failed(panic::UnwindFailure::Fatal(code), exc);
    }
    fatal("_Unwind_Resume", code)
}

/// # Safety
/// ABI entry point: `exc` is a valid exception object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_Resume_or_Rethrow(exc: *mut UnwindException) -> ReasonCode {
    let regs = Regs::capture();
    // SAFETY: forwarded ABI contract.
    unsafe {
        if (*exc).private_1 == 0 {
            let target = with_cache(|cache| itanium::raise_exception_target(regs, exc, cache));
            target.map_or_else(|code| code, |t| t.restore())
        } else {
            resume(regs, exc)
        }
    }
}

/// Phase 2 from `regs` to the next landing pad, which it enters; returns only on failure.
/// A forced unwind walks uncached: its stop function may longjmp out of the walk.
///
/// # Safety
/// As for `_Unwind_Resume`; `regs` captured in the entry point's frame.
unsafe fn resume(regs: Regs, exc: *mut UnwindException) -> ReasonCode {
    // SAFETY: a valid exception object.
    let target = if unsafe { (*exc).private_1 } == 0 {
        // SAFETY: forwarded.
        with_cache(|cache| unsafe { itanium::resume_target(regs, exc, cache) })
    } else {
        // SAFETY: forwarded.
        unsafe { itanium::resume_target(regs, exc, None) }
    };
    // SAFETY: a landing pad a personality (or stop function) set up in a live frame of
    // this thread; the cache is released.
    target.map_or_else(|code| code, |t| unsafe { t.restore() })
}

/// # Safety
/// ABI entry point: `exc` is a valid exception object, `stop` a stop function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_ForcedUnwind(
    exc: *mut UnwindException,
    stop: StopFn,
    stop_arg: *mut c_void,
) -> ReasonCode {
    let regs = Regs::capture();
    install();
    foreign::note_forced(exc);
    // SAFETY: forwarded ABI contract.
    unsafe { itanium::forced_unwind(regs, exc, stop, stop_arg) }
}

/// # Safety
/// ABI entry point: `exc` is a valid exception object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_DeleteException(exc: *mut UnwindException) {
    // SAFETY: the exception's own cleanup, as the ABI specifies.
    unsafe {
        if let Some(cleanup) = (*exc).exception_cleanup {
            cleanup(itanium::URC_FOREIGN_EXCEPTION_CAUGHT, exc);
        }
    }
}

/// # Safety
/// ABI entry point: `trace` is a valid callback for `arg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> ReasonCode {
    let regs = Regs::capture();
    install();
    // The per-thread rule cache makes repeated backtraces cheap; a trace callback that
    // itself takes a backtrace (or a signal handler interrupting one) walks uncached.
    // SAFETY: forwarded ABI contract.
    with_cache(|c| unsafe { itanium::backtrace(regs, c.map(|c| &mut c.rules), trace, arg) })
}

/// # Safety
/// `ctx` is a context passed to a personality, stop function or trace callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_GetGR(ctx: *mut UnwindContext, index: c_int) -> usize {
    forward_foreign!(
        ctx,
        c"_Unwind_GetGR",
        unsafe extern "C" fn(*mut UnwindContext, c_int) -> usize,
        (ctx, index)
    );
    // SAFETY: a live context.
    unsafe { (*ctx).regs.get(index as u16).unwrap_or(0) as usize }
}

/// # Safety
/// As for [`_Unwind_GetGR`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_SetGR(ctx: *mut UnwindContext, index: c_int, value: usize) {
    forward_foreign!(
        ctx,
        c"_Unwind_SetGR",
        unsafe extern "C" fn(*mut UnwindContext, c_int, usize),
        (ctx, index, value)
    );
    // SAFETY: a live context.
    unsafe { (*ctx).regs.set(index as u16, value as u64) };
}

/// # Safety
/// As for [`_Unwind_GetGR`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize {
    forward_foreign!(
        ctx,
        c"_Unwind_GetIP",
        unsafe extern "C" fn(*mut UnwindContext) -> usize,
        (ctx)
    );
    // SAFETY: a live context.
    unsafe { (*ctx).regs.pc() as usize }
}

/// # Safety
/// As for [`_Unwind_GetGR`]; `ip_before_insn` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_GetIPInfo(
    ctx: *mut UnwindContext,
    ip_before_insn: *mut c_int,
) -> usize {
    forward_foreign!(
        ctx,
        c"_Unwind_GetIPInfo",
        unsafe extern "C" fn(*mut UnwindContext, *mut c_int) -> usize,
        (ctx, ip_before_insn)
    );
    // SAFETY: a live context and a writable flag.
    unsafe {
        *ip_before_insn = c_int::from((*ctx).exact_pc);
        (*ctx).regs.pc() as usize
    }
}

/// # Safety
/// As for [`_Unwind_GetGR`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_SetIP(ctx: *mut UnwindContext, ip: usize) {
    forward_foreign!(
        ctx,
        c"_Unwind_SetIP",
        unsafe extern "C" fn(*mut UnwindContext, usize),
        (ctx, ip)
    );
    // SAFETY: a live context.
    unsafe { (*ctx).regs.set_pc(ip as u64) };
}

/// # Safety
/// As for [`_Unwind_GetGR`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize {
    forward_foreign!(
        ctx,
        c"_Unwind_GetCFA",
        unsafe extern "C" fn(*mut UnwindContext) -> usize,
        (ctx)
    );
    // libgcc's value: the CFA of the frame's callee, i.e. the frame's stack pointer at
    // the call (glibc's thread cancellation compares it with a `setjmp` stack pointer).
    // SAFETY: a live context.
    unsafe { (*ctx).regs.sp() as usize }
}

/// # Safety
/// As for [`_Unwind_GetGR`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_GetLanguageSpecificData(ctx: *mut UnwindContext) -> usize {
    forward_foreign!(
        ctx,
        c"_Unwind_GetLanguageSpecificData",
        unsafe extern "C" fn(*mut UnwindContext) -> usize,
        (ctx)
    );
    // SAFETY: a live context.
    unsafe { (*ctx).lsda() as usize }
}

/// # Safety
/// As for [`_Unwind_GetGR`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_GetRegionStart(ctx: *mut UnwindContext) -> usize {
    forward_foreign!(
        ctx,
        c"_Unwind_GetRegionStart",
        unsafe extern "C" fn(*mut UnwindContext) -> usize,
        (ctx)
    );
    // SAFETY: a live context.
    unsafe { (*ctx).region_start() as usize }
}

/// x86_64 code uses no data-relative pointers in unwind tables: always 0, as in libgcc.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetDataRelBase(_ctx: *mut UnwindContext) -> usize {
    0
}

/// x86_64 code uses no text-relative pointers in unwind tables: always 0, as in libgcc.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetTextRelBase(_ctx: *mut UnwindContext) -> usize {
    0
}

/// The start of the function holding `pc`, or null.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_FindEnclosingFunction(pc: *mut c_void) -> *mut c_void {
    install();
    itanium::find_fde(pc as usize).map_or(core::ptr::null_mut(), |f| f.func_start as *mut c_void)
}

/// libgcc's `struct dwarf_eh_bases`.
#[repr(C)]
pub struct DwarfEhBases {
    pub tbase: *mut c_void,
    pub dbase: *mut c_void,
    pub func: *mut c_void,
}

/// The FDE covering `pc` (valid while its module stays registered or loaded), or null.
///
/// # Safety
/// `bases` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_Find_FDE(
    pc: *mut c_void,
    bases: *mut DwarfEhBases,
) -> *const c_void {
    install();
    match itanium::find_fde_address(pc as usize) {
        Some((fde, func)) => {
            // SAFETY: the caller's output struct.
            unsafe {
                *bases = DwarfEhBases {
                    tbase: core::ptr::null_mut(),
                    dbase: core::ptr::null_mut(),
                    func: func as *mut c_void,
                };
            }
            fde as *const c_void
        }
        None => core::ptr::null(),
    }
}

/// # Safety
/// `begin` is a zero-terminated `.eh_frame` section that outlives its registration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __register_frame(begin: *const u8) {
    // libgcc ignores a section that is only a terminator.
    // SAFETY: the caller's section.
    if begin.is_null() || unsafe { begin.cast::<u32>().read_unaligned() } == 0 {
        return;
    }
    // SAFETY: forwarded contract. A malformed section is not registered (libgcc would
    // abort later, at first use).
    let _ = unsafe { compat::register_frame(global(), begin) };
}

/// # Safety
/// As for [`__register_frame`]; `_object` is libgcc's bookkeeping, unused by clew.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __register_frame_info(begin: *const u8, _object: *mut c_void) {
    // SAFETY: forwarded.
    unsafe { __register_frame(begin) }
}

/// # Safety
/// As for [`__register_frame_info`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __register_frame_info_bases(
    begin: *const u8,
    object: *mut c_void,
    _tbase: *mut c_void,
    _dbase: *mut c_void,
) {
    // SAFETY: forwarded.
    unsafe { __register_frame_info(begin, object) }
}

/// `begin` is a null-terminated array of pointers to `.eh_frame` sections.
///
/// # Safety
/// Each section outlives its registration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __register_frame_table(begin: *const *const u8) {
    let mut p = begin;
    // SAFETY: the caller's null-terminated table.
    unsafe {
        while !p.is_null() && !(*p).is_null() {
            __register_frame(*p);
            p = p.add(1);
        }
    }
}

/// # Safety
/// As for [`__register_frame_table`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __register_frame_info_table(
    begin: *const *const u8,
    _object: *mut c_void,
) {
    // SAFETY: forwarded.
    unsafe { __register_frame_table(begin) }
}

/// # Safety
/// As for [`__register_frame_table`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __register_frame_info_table_bases(
    begin: *const *const u8,
    object: *mut c_void,
    _t: *mut c_void,
    _d: *mut c_void,
) {
    // SAFETY: forwarded.
    unsafe { __register_frame_info_table(begin, object) }
}

/// Deregisters what `__register_frame(begin)` registered; returns once no unwinder reads it.
#[unsafe(no_mangle)]
pub extern "C" fn __deregister_frame(begin: *const u8) {
    let _ = compat::deregister_frame(global(), begin);
}

/// Returns the `object` libgcc would have handed back (clew keeps none: null).
#[unsafe(no_mangle)]
pub extern "C" fn __deregister_frame_info(begin: *const u8) -> *mut c_void {
    __deregister_frame(begin);
    core::ptr::null_mut()
}

/// As [`__deregister_frame_info`].
#[unsafe(no_mangle)]
pub extern "C" fn __deregister_frame_info_bases(begin: *const u8) -> *mut c_void {
    __deregister_frame_info(begin)
}
