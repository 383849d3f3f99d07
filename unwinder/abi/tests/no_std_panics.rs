//! The no_std panic runtime (`clew_unwinder::panic`) driven from a host test binary that
//! has clew as its unwinder (so rustc's landing pads resume through clew's
//! `_Unwind_Resume`): catch points, drops while unwinding, nested catches and
//! `resume_unwind`, the unwinding-failed hook at the end of the stack and on a panic while
//! panicking (in child processes), clew's Rust personality on a real rustc LSDA, and the
//! panic-handler backtrace writer.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use clew_unwinder::itanium::{
    UA_CLEANUP_PHASE, UA_SEARCH_PHASE, URC_CONTINUE_UNWIND, URC_INSTALL_CONTEXT, UnwindContext,
};
use clew_unwinder::panic::{self, Exception, UnwindFailure};
use clew_unwinder::{LiveMemory, Native, Registers, Unwinder, global};

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[inline(never)]
fn panics_at(depth: u32, exc: &mut Exception<u32>) -> u32 {
    let _c = Counted;
    if depth == 0 {
        // SAFETY: `exc` outlives the unwind (it belongs to the test).
        unsafe { panic::begin_panic(exc) }
    }
    panics_at(depth - 1, exc) + std::hint::black_box(1)
}

#[test]
fn catch_point_returns_values_and_catches_with_drops() {
    clew_unwind::install();
    assert_eq!(panic::catch_unwind(|| 40 + 2), Ok(42));
    let mut exc = Exception::new(7u32);
    let header = exc.header();
    let before = DROPS.load(Ordering::SeqCst);
    let r = panic::catch_unwind(|| panics_at(10, &mut exc));
    let caught = r.expect_err("the panic reached the catch point");
    assert_eq!(caught, header);
    assert_eq!(
        DROPS.load(Ordering::SeqCst) - before,
        11,
        "every frame's drop ran"
    );
    // SAFETY: the header is the `Exception<u32>` above.
    assert_eq!(
        unsafe { Exception::<u32>::from_header(caught) }
            .unwrap()
            .value,
        7
    );
}

#[test]
fn nested_catch_and_resume_unwind() {
    clew_unwind::install();
    let mut exc = Exception::new(1u32);
    let outer = panic::catch_unwind(|| {
        let _c = Counted;
        let inner = panic::catch_unwind(|| panics_at(3, &mut exc));
        let h = inner.expect_err("inner catch");
        // SAFETY: rethrowing the caught exception, still alive.
        unsafe { panic::resume_unwind(h) }
    });
    // SAFETY: the header is an `Exception<u32>`.
    let e = unsafe { Exception::<u32>::from_header(outer.expect_err("outer catch")) }.unwrap();
    assert_eq!(e.value, 1);
    // A caught exception may be raised again.
    let again = panic::catch_unwind(|| panics_at(0, e));
    assert!(again.is_err());
}

#[test]
fn personality_enters_a_rustc_cleanup_pad() {
    clew_unwinder::os::linux::ensure_loaded_objects();
    #[inline(never)]
    fn with_drop(f: &mut dyn FnMut(&mut UnwindContext)) {
        let _c = Counted;
        context_of_caller(f);
        std::hint::black_box(());
    }
    #[inline(never)]
    fn context_of_caller(f: &mut dyn FnMut(&mut UnwindContext)) {
        // Walk to the frame of `with_drop` and build its context as the unwinder would.
        let regs = clew_unwinder::arch::x86_64::Regs::capture();
        // SAFETY: this thread's sane stack.
        let mem = unsafe { LiveMemory::unchecked() };
        let unwinder = Unwinder::<Native>::new(global());
        let mut it = unwinder.frames(regs, false, &mem, None);
        let _ = it.next(); // context_of_caller
        let regs = *it.registers();
        let frame = it.next().unwrap().unwrap();
        let mut ctx = UnwindContext::new(regs, frame.cfa.unwrap(), false, it.fde_info().copied());
        f(&mut ctx);
    }
    let mut exc = Exception::new(0u32);
    let header = exc.header();
    with_drop(&mut |ctx| {
        let pc = ctx.regs.pc();
        let start = ctx.region_start();
        assert_ne!(
            ctx.lsda(),
            0,
            "rustc emitted an LSDA for a function with a drop"
        );
        // SAFETY: a context built like the unwinder's, and a live exception.
        unsafe {
            assert_eq!(
                panic::rust_personality(1, UA_SEARCH_PHASE, 0, header, ctx),
                URC_CONTINUE_UNWIND
            );
            assert_eq!(
                panic::rust_personality(1, UA_CLEANUP_PHASE, 0, header, ctx),
                URC_INSTALL_CONTEXT
            );
        }
        let lpad = ctx.regs.pc();
        assert!(
            lpad != pc && lpad > start && lpad < ctx.info.unwrap().func_end,
            "landing pad in the function"
        );
        assert_eq!(
            ctx.regs.get(0),
            Some(header as u64),
            "exception pointer in rax"
        );
    });
}

#[test]
fn write_backtrace_prints_frames() {
    clew_unwind::install();
    let mut s = String::new();
    // SAFETY: this thread's sane stack.
    unsafe { panic::write_backtrace(&mut s, None, Some(&|pc, w| write!(w, "<{pc:x}>"))) }.unwrap();
    let lines: Vec<_> = s.lines().collect();
    assert!(lines.len() > 3, "{s}");
    assert!(
        lines[0].starts_with("  #0  0x") && lines[0].contains('<'),
        "{s}"
    );
}

fn child(name: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("CLEW_PANIC_CHILD", "1")
        .output()
        .unwrap()
}

fn hook(why: UnwindFailure, _exc: *mut clew_unwinder::itanium::UnwindException) -> ! {
    println!("HOOK {why:?}");
    std::process::exit(3)
}

#[test]
fn child_no_catch_point() {
    if std::env::var_os("CLEW_PANIC_CHILD").is_none() {
        return;
    }
    clew_unwind::install();
    panic::set_unwinding_failed_hook(hook);
    // A raw thread: no std catch frame (the test harness's, a std thread's) sits between
    // the panic and the end of the stack, as in a kernel task.
    extern "C-unwind" fn start(_: *mut libc::c_void) -> *mut libc::c_void {
        let mut exc = Exception::new(0u32);
        panics_at(2, &mut exc);
        std::ptr::null_mut()
    }
    // SAFETY: a plain pthread running `start`; the C-unwind ABI lets the unwind cross it.
    unsafe {
        let mut t: libc::pthread_t = std::mem::zeroed();
        let start: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void =
            std::mem::transmute(start as *const ());
        assert_eq!(
            libc::pthread_create(&mut t, std::ptr::null(), start, std::ptr::null_mut()),
            0
        );
        libc::pthread_join(t, std::ptr::null_mut());
    }
    println!("NOT REACHED");
}

#[test]
fn child_double_panic() {
    if std::env::var_os("CLEW_PANIC_CHILD").is_none() {
        return;
    }
    clew_unwind::install();
    panic::set_unwinding_failed_hook(hook);
    // One exception for the task, as a kernel keeps one per task.
    static EXC: std::sync::atomic::AtomicPtr<Exception<u32>> =
        std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
    EXC.store(Box::into_raw(Box::new(Exception::new(9))), Ordering::SeqCst);
    struct PanicsInDrop;
    impl Drop for PanicsInDrop {
        fn drop(&mut self) {
            // SAFETY: the same in-flight exception raised again: a panic while panicking.
            unsafe { panic::begin_panic(&mut *EXC.load(Ordering::SeqCst)) }
        }
    }
    let _ = panic::catch_unwind(|| {
        let _p = PanicsInDrop;
        // SAFETY: a leaked, live exception.
        unsafe { panic::begin_panic(&mut *EXC.load(Ordering::SeqCst)) }
    });
    println!("NOT REACHED");
}

#[test]
fn unwinding_failures_reach_the_hook() {
    let o = child("child_no_catch_point");
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("HOOK EndOfStack"));
    let o = child("child_double_panic");
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("HOOK DoublePanic"));
}
