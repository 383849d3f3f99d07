//! Rust panics with clew as the process's unwinder (linked statically): `catch_unwind`,
//! `resume_unwind`, drops during unwinding, panics in many threads at once, and
//! `_Unwind_Backtrace` answered by clew.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[inline(never)]
fn deep(n: u32, payload: u32) -> u32 {
    let _c = Counted;
    if n == 0 {
        std::panic::panic_any(payload);
    }
    deep(n - 1, payload) + std::hint::black_box(1)
}

fn quiet() {
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn panics_cross_frames_run_drops_and_are_caught() {
    clew_unwind::install();
    quiet();
    let raised = clew_unwind::raised();
    let before = DROPS.load(Ordering::SeqCst);
    let r = catch_unwind(|| deep(20, 7));
    let payload = r.expect_err("the panic is caught");
    assert_eq!(*payload.downcast_ref::<u32>().unwrap(), 7);
    assert!(
        DROPS.load(Ordering::SeqCst) - before >= 21,
        "every frame's drop ran"
    );
    assert!(
        clew_unwind::raised() > raised,
        "clew's _Unwind_RaiseException raised it"
    );
}

#[test]
fn resume_unwind_rethrows_through_more_frames() {
    clew_unwind::install();
    quiet();
    let r = catch_unwind(|| {
        let _outer = Counted;
        let inner = catch_unwind(|| deep(5, 1));
        let p = inner.expect_err("inner caught");
        resume_unwind(p);
    });
    assert_eq!(*r.unwrap_err().downcast_ref::<u32>().unwrap(), 1);
}

#[test]
fn eight_threads_panic_at_once() {
    clew_unwind::install();
    quiet();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8u32)
        .map(|i| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let mut caught = 0;
                for round in 0..50 {
                    b.wait();
                    let r =
                        catch_unwind(AssertUnwindSafe(|| deep(i + round % 7, i * 1000 + round)));
                    if *r.unwrap_err().downcast_ref::<u32>().unwrap() == i * 1000 + round {
                        caught += 1;
                    }
                }
                caught
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 50);
    }
}

#[test]
fn unwind_backtrace_is_clews() {
    use std::ffi::c_void;
    clew_unwind::install();
    unsafe extern "C" fn push(
        ctx: *mut clew_unwinder::itanium::UnwindContext,
        arg: *mut c_void,
    ) -> i32 {
        // SAFETY: `arg` is the Vec below; ctx is live.
        unsafe { (*(arg as *mut Vec<usize>)).push(clew_unwind::_Unwind_GetIP(ctx)) };
        0
    }
    #[inline(never)]
    fn both() -> (Vec<usize>, Vec<usize>) {
        let mut a = Vec::new();
        // SAFETY: a valid callback and argument.
        unsafe { clew_unwind::_Unwind_Backtrace(push, (&raw mut a).cast()) };
        let mut b = vec![0; 256];
        let n = clew_unwinder::backtrace(&mut b);
        b.truncate(n);
        (a, b)
    }
    let (mut a, b) = both();
    while a.last() == Some(&0) {
        a.pop();
    }
    assert!(a.len() > 3);
    assert_eq!(a[1..], b[1..]);
}

#[test]
fn find_fde_and_enclosing_function() {
    clew_unwind::install();
    #[inline(never)]
    fn target(x: u32) -> u32 {
        std::hint::black_box(x) * 3 + 1
    }
    let f = target as *const () as usize;
    assert_eq!(target(1), 4);
    let enclosing = clew_unwind::_Unwind_FindEnclosingFunction((f + 2) as *mut _);
    assert_eq!(enclosing as usize, f);
    let mut bases = clew_unwind::DwarfEhBases {
        tbase: std::ptr::null_mut(),
        dbase: std::ptr::null_mut(),
        func: std::ptr::null_mut(),
    };
    // SAFETY: a writable bases struct.
    let fde = unsafe { clew_unwind::_Unwind_Find_FDE((f + 2) as *mut _, &mut bases) };
    assert!(!fde.is_null());
    assert_eq!(bases.func as usize, f);
    // The FDE's CIE pointer field is non-zero (it is an FDE, not a CIE).
    // SAFETY: an FDE in this binary's mapped .eh_frame.
    assert_ne!(unsafe { (fde as *const u32).add(1).read_unaligned() }, 0);
    assert!(clew_unwind::_Unwind_FindEnclosingFunction(std::ptr::null_mut()).is_null());
}
