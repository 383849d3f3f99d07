//! Backtrace cost per frame, clew against libgcc and a frame-pointer walk in the same run.
//!
//! A recursion of real native functions (`#[inline(never)]`, work after the call so no
//! tail call) goes `d` frames deep, and criterion's measuring loop runs at the bottom.
//! Every walk collects exactly `d` PCs (a buffer of `d`), so the time divided by `d` is
//! the cost per frame including the fixed setup amortized over `d` frames:
//!
//! - `clew backtrace (warm)`: `clew_unwinder::backtrace`, per-thread rule cache warm;
//! - `clew trace_into (warm cache)`: the `Unwinder` with a warm `UnwindCache` and stack
//!   bounds computed once (what `backtrace` costs without its per-call setup);
//! - `clew trace_into (uncached)`: the `Unwinder` with no cache: every frame looks up its
//!   FDE and evaluates the CFI;
//! - `libgccNN _Unwind_Backtrace`: a callback collecting `_Unwind_GetIP`;
//! - `frame-pointer walk`: a raw rbp chain, only measured when the build keeps frame
//!   pointers (`RUSTFLAGS="-C force-frame-pointers=yes"`), checked at run time.

mod common;

use std::ffi::c_void;
use std::hint::black_box;
use std::ops::Range;

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::os::linux::{current_stack_bounds, ensure_loaded_objects};
use clew_unwinder::{LiveMemory, Native, UnwindCache, Unwinder, global};
use common::UnwindContext;
use criterion::{BenchmarkId, Throughput};

const DEPTHS: [usize; 3] = [16, 64, 256];

/// Recurses `depth` frames, then runs `f` at the bottom.
#[inline(never)]
fn recurse(depth: usize, f: &mut dyn FnMut()) -> usize {
    if depth == 0 {
        f();
        return 0;
    }
    let r = recurse(black_box(depth - 1), f);
    black_box(r) + 1
}

struct Collect {
    buf: *mut usize,
    len: usize,
    cap: usize,
}

extern "C" fn collect(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Collect` passed by `libgcc_backtrace`, whose buffer has
    // `cap` slots; `ctx` is libgcc's live context.
    unsafe {
        let c = &mut *(arg as *mut Collect);
        if c.len == c.cap {
            return common::URC_NORMAL_STOP;
        }
        *c.buf.add(c.len) = common::_Unwind_GetIP(ctx);
        c.len += 1;
        if c.len == c.cap {
            common::URC_NORMAL_STOP
        } else {
            common::URC_NO_REASON
        }
    }
}

#[inline(never)]
fn libgcc_backtrace(buf: &mut [usize]) -> usize {
    let mut c = Collect {
        buf: buf.as_mut_ptr(),
        len: 0,
        cap: buf.len(),
    };
    // SAFETY: the callback matches `_Unwind_Trace_Fn` and only writes inside `buf`.
    unsafe { common::_Unwind_Backtrace(collect, (&raw mut c).cast()) };
    c.len
}

/// Follows the rbp chain from this function's frame: `[rbp]` is the caller's rbp and
/// `[rbp + 8]` the return address. Reads stay between this frame and `stack_end`.
#[inline(never)]
fn fp_walk(buf: &mut [usize], stack_end: usize) -> usize {
    let marker = 0u8;
    let low = (&raw const marker) as usize;
    let mut fp: usize;
    // SAFETY: reads rbp only.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    let mut n = 0;
    while n < buf.len() {
        if fp < low || fp.saturating_add(16) > stack_end || fp & 7 != 0 {
            break;
        }
        // SAFETY: inside the live part of this thread's stack (checked above).
        let (next, ra) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        buf[n] = ra;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// The PC that occurs most often: the return address of the recursive call.
fn recursion_pc(pcs: &[usize]) -> usize {
    let mut sorted = pcs.to_vec();
    sorted.sort_unstable();
    sorted
        .chunk_by(|a, b| a == b)
        .max_by_key(|c| c.len())
        .map_or(0, |c| c[0])
}

/// Checks every walker at depth `d` against libgcc; returns whether the frame-pointer
/// walk sees the same frames (i.e. whether this build keeps frame pointers).
fn check(d: usize, stack: &Range<u64>) -> bool {
    let mut fp_ok = false;
    recurse(d, &mut || {
        let mut lg = vec![0; d];
        let mut clew = vec![0; d];
        let mut cold = vec![0; d];
        let mut fp = vec![0; d];
        assert_eq!(libgcc_backtrace(&mut lg), d);
        assert_eq!(clew_unwinder::backtrace(&mut clew), d);
        let mem = LiveMemory::with_bounds(std::slice::from_ref(stack));
        let unwinder = Unwinder::<Native>::new(global());
        assert_eq!(
            unwinder.trace_into(Regs::capture(), false, &mem, None, &mut cold),
            d
        );
        let n_fp = fp_walk(&mut fp, stack.end as usize);
        let r = recursion_pc(&lg);
        let count = |pcs: &[usize]| pcs.iter().filter(|&&p| p == r).count();
        // libgcc's first PC is inside the caller of `_Unwind_Backtrace`; clew's first is
        // the caller of `backtrace`: at most a frame or two apart.
        assert!(count(&lg) + 4 >= d, "the recursion is not {d} frames deep");
        assert!(count(&clew).abs_diff(count(&lg)) <= 2);
        assert!(count(&cold).abs_diff(count(&lg)) <= 2);
        fp_ok = n_fp == d && count(&fp[..n_fp]).abs_diff(count(&lg)) <= 2;
    });
    fp_ok
}

fn main() {
    common::report_libgcc();
    let gcc = common::libgcc_label();
    ensure_loaded_objects();
    let [stack, _] = current_stack_bounds();
    let fp_ok = DEPTHS.iter().all(|&d| check(d, &stack));
    if !fp_ok {
        eprintln!(
            "frame pointers: not kept by this build; skipping the frame-pointer walk \
             (run with RUSTFLAGS=\"-C force-frame-pointers=yes\")"
        );
    } else {
        eprintln!("frame pointers: kept (the frame-pointer walk matches libgcc)");
    }
    let mut c = common::config();
    let mut group = c.benchmark_group("backtrace");
    for d in DEPTHS {
        group.throughput(Throughput::Elements(d as u64));
        let mut buf = vec![0usize; d];
        group.bench_function(BenchmarkId::new("clew backtrace (warm)", d), |b| {
            recurse(d, &mut || {
                b.iter(|| black_box(clew_unwinder::backtrace(black_box(&mut buf))))
            });
        });
        let mut cache = Box::new(UnwindCache::new());
        group.bench_function(BenchmarkId::new("clew trace_into (warm cache)", d), |b| {
            recurse(d, &mut || {
                let mem = LiveMemory::with_bounds(std::slice::from_ref(&stack));
                let unwinder = Unwinder::<Native>::new(global());
                b.iter(|| {
                    black_box(unwinder.trace_into(
                        Regs::capture(),
                        false,
                        &mem,
                        Some(&mut cache),
                        black_box(&mut buf),
                    ))
                })
            });
        });
        group.bench_function(BenchmarkId::new("clew trace_into (uncached)", d), |b| {
            recurse(d, &mut || {
                let mem = LiveMemory::with_bounds(std::slice::from_ref(&stack));
                let unwinder = Unwinder::<Native>::new(global());
                b.iter(|| {
                    black_box(unwinder.trace_into(
                        Regs::capture(),
                        false,
                        &mem,
                        None,
                        black_box(&mut buf),
                    ))
                })
            });
        });
        group.bench_function(
            BenchmarkId::new(format!("{gcc} _Unwind_Backtrace"), d),
            |b| {
                recurse(d, &mut || {
                    b.iter(|| black_box(libgcc_backtrace(black_box(&mut buf))))
                });
            },
        );
        if fp_ok {
            group.bench_function(BenchmarkId::new("frame-pointer walk", d), |b| {
                recurse(d, &mut || {
                    b.iter(|| black_box(fp_walk(black_box(&mut buf), stack.end as usize)))
                });
            });
        }
    }
    group.finish();
    c.final_summary();
}
