//! Timestamps: a pluggable [`Clock`]. The default ([`DefaultClock`]) reads the TSC on
//! x86_64 (about 7 ns here, the largest part of recording an event) unless a kernel or
//! host installs its own clock with [`set_clock`].

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

/// What a timestamp counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClockKind {
    /// Unknown or none (timestamps are 0).
    #[default]
    None,
    /// The x86 time-stamp counter.
    Tsc,
    /// Nanoseconds of a monotonic clock.
    Nanoseconds,
    /// A kernel's or program's own ticks.
    Custom,
}

/// A clock's kind and rate, as a dump header records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockInfo {
    pub kind: ClockKind,
    /// Ticks per second, 0 when unknown.
    pub hz: u64,
}

/// A source of event timestamps. Must be cheap and callable from any context.
pub trait Clock: Sync {
    fn now(&self) -> u64;
    fn info(&self) -> ClockInfo;
}

/// Reads the x86 time-stamp counter.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86_64 (user mode may read it unless the
    // kernel sets CR4.TSD, which no supported host does).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC frequency, once known ([`set_tsc_hz`] or, on hosts, [`calibrate_tsc`]).
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Records the TSC frequency (a kernel knows it from CPUID or its timer calibration).
pub fn set_tsc_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
}

/// The TSC frequency if known, else 0.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Measures the TSC frequency against the host's monotonic clock (sleeps ~10 ms, once;
/// later calls return the stored value). Call it at start-up, not at panic time.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub fn calibrate_tsc() -> u64 {
    let known = tsc_hz();
    if known != 0 {
        return known;
    }
    let t0 = std::time::Instant::now();
    let c0 = rdtsc();
    std::thread::sleep(std::time::Duration::from_millis(10));
    let c1 = rdtsc();
    let ns = t0.elapsed().as_nanos().max(1);
    let hz = (u128::from(c1.wrapping_sub(c0)) * 1_000_000_000 / ns) as u64;
    set_tsc_hz(hz);
    hz
}

/// A clock a program installs: a function and what it counts.
#[derive(Clone, Copy, Debug)]
pub struct ClockFn {
    pub now: fn() -> u64,
    pub info: ClockInfo,
}

static CLOCK_FN: AtomicUsize = AtomicUsize::new(0);
static CLOCK_INFO: AtomicU64 = AtomicU64::new(0);
static CLOCK_HZ: AtomicU64 = AtomicU64::new(0);

/// Installs the clock [`DefaultClock`] reads (and so the global recorder). Without one,
/// x86_64 reads the TSC and other architectures record 0.
pub fn set_clock(clock: ClockFn) {
    CLOCK_HZ.store(clock.info.hz, Ordering::Relaxed);
    CLOCK_INFO.store(clock.info.kind as u64, Ordering::Relaxed);
    CLOCK_FN.store(clock.now as usize, Ordering::Release);
}

/// The TSC on x86_64, or the clock installed with [`set_clock`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClock;

impl Clock for DefaultClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        let f = CLOCK_FN.load(Ordering::Relaxed);
        if f == 0 {
            #[cfg(target_arch = "x86_64")]
            return rdtsc();
            #[cfg(not(target_arch = "x86_64"))]
            return 0;
        }
        // SAFETY: only `set_clock` stores a non-zero value, and it stores an `fn() -> u64`.
        let f: fn() -> u64 = unsafe { core::mem::transmute::<usize, fn() -> u64>(f) };
        f()
    }

    fn info(&self) -> ClockInfo {
        if CLOCK_FN.load(Ordering::Acquire) != 0 {
            let kind = match CLOCK_INFO.load(Ordering::Relaxed) {
                1 => ClockKind::Tsc,
                2 => ClockKind::Nanoseconds,
                3 => ClockKind::Custom,
                _ => ClockKind::None,
            };
            return ClockInfo {
                kind,
                hz: CLOCK_HZ.load(Ordering::Relaxed),
            };
        }
        if cfg!(target_arch = "x86_64") {
            ClockInfo {
                kind: ClockKind::Tsc,
                hz: tsc_hz(),
            }
        } else {
            ClockInfo::default()
        }
    }
}

/// A clock that always reads 0: for recorders whose callers pass timestamps, and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoClock;

impl Clock for NoClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        0
    }
    fn info(&self) -> ClockInfo {
        ClockInfo::default()
    }
}

/// A monotonic clock in nanoseconds since the first call (host; ~18 ns a read here).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

#[cfg(feature = "std")]
impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
    fn info(&self) -> ClockInfo {
        ClockInfo {
            kind: ClockKind::Nanoseconds,
            hz: 1_000_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_clock_moves() {
        let c = DefaultClock;
        let a = c.now();
        let b = c.now();
        if cfg!(target_arch = "x86_64") {
            assert!(b >= a);
            assert_eq!(c.info().kind, ClockKind::Tsc);
        }
    }
}
