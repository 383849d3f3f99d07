//! What Wasmtime's no_std runtime asks of its embedder (built without
//! `custom-virtual-memory` and `custom-native-signals`): two TLS words, a way to make
//! code executable, and answers about CPU features it cannot probe itself.

use core::sync::atomic::{AtomicPtr, Ordering};

use wasmtime::CustomCodeMemory;

/// Wasmtime's TLS slots (0: the runtime's activation, 1: component-model-async state).
/// One CPU, no threads: plain statics.
static TLS: [AtomicPtr<u8>; 2] = [
    AtomicPtr::new(core::ptr::null_mut()),
    AtomicPtr::new(core::ptr::null_mut()),
];

#[unsafe(no_mangle)]
pub extern "C" fn wasmtime_tls_get(slot: usize) -> *mut u8 {
    TLS.get(slot)
        .map_or(core::ptr::null_mut(), |s| s.load(Ordering::Relaxed))
}

#[unsafe(no_mangle)]
pub extern "C" fn wasmtime_tls_set(slot: usize, ptr: *mut u8) {
    if let Some(s) = TLS.get(slot) {
        s.store(ptr, Ordering::Relaxed);
    }
}

/// Both TLS words, to put back after a panic unwound past Wasmtime's guards.
pub fn tls_snapshot() -> [*mut u8; 2] {
    [wasmtime_tls_get(0), wasmtime_tls_get(1)]
}

pub fn tls_restore(saved: [*mut u8; 2]) {
    wasmtime_tls_set(0, saved[0]);
    wasmtime_tls_set(1, saved[1]);
}

/// The kernel's memory is identity-mapped read-write-execute (no NX bit is set in the
/// boot page tables), so publishing code only needs the x86 guarantee that stores are
/// seen by later instruction fetches on this CPU (true after a serializing event; the
/// call into the code is one). A kernel with W^X would flip page permissions here.
pub struct IdentityMappedCode;

impl CustomCodeMemory for IdentityMappedCode {
    fn required_alignment(&self) -> usize {
        4096
    }

    fn publish_executable(&self, _ptr: *const u8, _len: usize) -> wasmtime::Result<()> {
        Ok(())
    }

    fn unpublish_executable(&self, _ptr: *const u8, _len: usize) -> wasmtime::Result<()> {
        Ok(())
    }
}

fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    // Every x86_64 CPU has `cpuid`; out-of-range leaves return zeros or the highest
    // leaf's values, which the bits read below then do not claim.
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

/// `Config::detect_host_feature`: Rust's feature names, answered from `cpuid`. AVX and
/// later are reported absent: the boot code does not enable XSAVE state for them.
pub fn detect_host_feature(feature: &str) -> Option<bool> {
    let l1 = cpuid(1, 0);
    let l7 = cpuid(7, 0);
    let ext = cpuid(0x8000_0001, 0);
    let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
    Some(match feature {
        "sse3" => bit(l1.ecx, 0),
        "ssse3" => bit(l1.ecx, 9),
        "sse4.1" => bit(l1.ecx, 19),
        "sse4.2" => bit(l1.ecx, 20),
        "popcnt" => bit(l1.ecx, 23),
        "bmi1" => bit(l7.ebx, 3),
        "bmi2" => bit(l7.ebx, 8),
        "lzcnt" => bit(ext.ecx, 5),
        "avx" | "avx2" | "fma" | "avxvnni" | "avx512bitalg" | "avx512dq" | "avx512f"
        | "avx512vl" | "avx512vbmi" | "avx512vnni" => false,
        _ => return None,
    })
}
