//! The native demo: a panic three calls deep, each frame holding a `Drop` guard, caught
//! by clew's catch point after unwinding through the kernel's own frames (and libcore's
//! `panic_fmt`, which has no CFI: the frame-pointer fallback steps over it).

use core::hint::black_box;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::println;

static DROPS: AtomicUsize = AtomicUsize::new(0);

/// A guard whose `Drop` reports that it ran during unwinding.
pub struct Guard(pub &'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
        println!("clew-kernel: drop: guard of {}", self.0);
    }
}

#[inline(never)]
fn level3(n: u32) -> u32 {
    let _guard = Guard("level3");
    if black_box(n) > 2 {
        panic!("boom at level {n}");
    }
    n
}

#[inline(never)]
fn level2(n: u32) -> u32 {
    let _guard = Guard("level2");
    black_box(level3(black_box(n + 1))) + 1
}

#[inline(never)]
fn level1(n: u32) -> u32 {
    let _guard = Guard("level1");
    black_box(level2(black_box(n + 1))) + 1
}

/// Runs the demo; true when the panic was caught with every guard dropped.
#[inline(never)]
pub fn run() -> bool {
    println!("clew-kernel: native demo: level1 -> level2 -> level3 panics");
    let result = clew_unwinder::panic::catch_unwind(|| level1(black_box(1)));
    let header = match result {
        Ok(v) => {
            println!("clew-kernel: FAIL: no panic (returned {v})");
            return false;
        }
        Err(h) => h,
    };
    // SAFETY: the header comes from the catch point.
    let message = unsafe { crate::runtime::payload(header) }.map(|p| p.message());
    let drops = DROPS.load(Ordering::SeqCst);
    println!(
        "clew-kernel: caught panic: {:?}",
        message.unwrap_or("<foreign exception>")
    );
    println!("clew-kernel: drops run: {drops}");
    println!("clew-kernel: backtrace of the panic:");
    crate::backtrace::print_trace(crate::runtime::last_trace());
    message == Some("boom at level 3") && drops == 3
}
