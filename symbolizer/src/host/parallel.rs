//! Batches over threads: addresses sorted, split into runs of consecutive addresses (so
//! threads mostly touch different units) that free threads take in turn, against one
//! shared `Sync` image or symbolizer; results in input order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::vec::Vec;

/// Calls `f` on every address of `addrs` over `threads` threads (the available
/// parallelism when 0); returns the results in the order of `addrs`.
pub fn map<T: Send>(addrs: &[u64], threads: usize, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = match threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads <= 1 || addrs.len() < 64 {
        return crate::in_address_order(addrs, f);
    }
    let mut order: Vec<usize> = (0..addrs.len()).collect();
    order.sort_unstable_by_key(|&i| addrs[i]);
    // Runs of consecutive addresses, taken by whichever thread is free: a few per
    // thread, so one slow run (a huge unit) does not leave the others idle.
    let run = order.len().div_ceil(threads * 8).max(32);
    let runs: Vec<&[usize]> = order.chunks(run).collect();
    let next = AtomicUsize::new(0);
    let (f, runs, next) = (&f, &runs, &next);
    let parts: Vec<Vec<(usize, T)>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut done = Vec::new();
                    while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        done.extend(run.iter().map(|&i| (i, f(addrs[i]))));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a symbolizing thread panicked"))
            .collect()
    });
    let mut out: Vec<Option<T>> = (0..addrs.len()).map(|_| None).collect();
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every slot filled"))
        .collect()
}
