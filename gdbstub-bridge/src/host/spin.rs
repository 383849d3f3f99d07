//! Optional polling before a blocking read (TCP). While gdb walks memory its next packet
//! follows a reply within microseconds, and a thread blocked in `recv` pays a scheduler
//! wake-up per packet — most of a small packet's round trip (BENCHMARKS.md, Part 5). A
//! transport may first poll without blocking for a bounded time, then block: while gdb is
//! idle that burns at most the budget of CPU once per reply.
//!
//! Off by default: on the shared 2-CPU machine it made the `m` round trip slower, not
//! faster (50 µs: 1.14× gdbserver's wall time and 1.4× its CPU, against 0.90–0.99× and
//! ~1.0× without; 10 µs: 1.05×), as the polling thread competes with gdb for the CPUs and
//! for the socket. `CLEW_GDB_SPIN_US=N` turns it on to measure elsewhere (`cargo bench -p
//! clew --bench gdb_rsp`). Not for a pty: its bytes go through a kernel worker that a
//! polling thread keeps off the CPU (a round trip became 5× slower).

use std::time::{Duration, Instant};

/// The polling budget: `CLEW_GDB_SPIN_US` (microseconds), else zero (no polling).
pub fn budget() -> Duration {
    std::env::var("CLEW_GDB_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::ZERO, Duration::from_micros)
}

/// Calls `attempt` (a non-blocking read: `None` when nothing has arrived) until it
/// answers or `budget` has passed (`None`: block now).
pub(crate) fn spin<R>(budget: Duration, mut attempt: impl FnMut() -> Option<R>) -> Option<R> {
    if budget.is_zero() {
        return None;
    }
    let start = Instant::now();
    loop {
        if let Some(r) = attempt() {
            return Some(r);
        }
        if start.elapsed() >= budget {
            return None;
        }
        core::hint::spin_loop();
    }
}
