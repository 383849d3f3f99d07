//! Writing a dump allocates nothing (the whole dump: header, panic message, modules with
//! JIT `.eh_frame` and symbols, registers, stack, backtrace, events).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clew_tracer::SliceSink;
use clew_tracer::clock::NoClock;

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn dump_writing_does_not_allocate() {
    let reg = common::sample_registry();
    let rec = common::SmallRecorder::new(NoClock);
    common::fill(&rec);
    let mut region = vec![0u8; 1 << 20];
    // Warm up lazily initialised state (CPU feature detection in crc32fast).
    let _ = crc32fast::hash(b"warm");
    let _ = (common::stack_bytes(), common::pcs());

    ARMED.store(true, Ordering::SeqCst);
    let (sink, summary) = common::write_sample(SliceSink::new(&mut region), &reg, &rec);
    ARMED.store(false, Ordering::SeqCst);

    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations while writing a dump"
    );
    assert_eq!(summary.error, None);
    let n = sink.len();
    let d = clew_tracer::decode::decode(&region[..n]);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.dump.modules.len(), 2);
}
