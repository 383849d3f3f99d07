//! Shared by the benchmarks: libgcc's entry points (the reference), which libgcc_s got
//! loaded, and the criterion settings.
#![allow(dead_code)]

use std::ffi::c_void;
use std::time::Duration;

use criterion::Criterion;

/// libgcc's `struct dwarf_eh_bases`, filled by `_Unwind_Find_FDE`.
#[repr(C)]
pub struct DwarfEhBases {
    pub tbase: *mut c_void,
    pub dbase: *mut c_void,
    pub func: *mut c_void,
}

impl DwarfEhBases {
    pub const fn new() -> Self {
        DwarfEhBases {
            tbase: std::ptr::null_mut(),
            dbase: std::ptr::null_mut(),
            func: std::ptr::null_mut(),
        }
    }
}

#[repr(C)]
pub struct UnwindContext {
    _private: [u8; 0],
}

pub type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> i32;

/// The `_URC_NO_REASON` / `_URC_NORMAL_STOP` codes a trace callback returns.
pub const URC_NO_REASON: i32 = 0;
pub const URC_NORMAL_STOP: i32 = 4;

/// The room a caller provides for libgcc's `struct object` (six or seven pointers).
pub type ObjectBuf = [usize; 8];

unsafe extern "C" {
    pub fn __register_frame_info(begin: *const u8, object: *mut ObjectBuf);
    pub fn __deregister_frame_info(begin: *const u8) -> *mut ObjectBuf;
    pub fn _Unwind_Find_FDE(pc: *const c_void, bases: *mut DwarfEhBases) -> *const u8;
    pub fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> i32;
    pub fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

/// The path of the `libgcc_s` this process loaded, from `/proc/self/maps`.
pub fn loaded_libgcc() -> String {
    std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            maps.lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .find(|p| p.contains("libgcc_s"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from("(libgcc_s not mapped)"))
}

/// Which GCC the loaded libgcc_s comes from: the newest `GCC_N.0.0` symbol version it
/// defines (libgcc_s 12 defines `GCC_12.0.0`, 14 defines `GCC_14.0.0`).
pub fn libgcc_version() -> String {
    unsafe extern "C" {
        fn dlvsym(handle: *mut c_void, symbol: *const i8, version: *const i8) -> *mut c_void;
    }
    // Symbols that first appeared in each GCC's libgcc_s.
    let probes: [(&str, &core::ffi::CStr, &core::ffi::CStr); 3] = [
        ("GCC 14", c"__strub_enter", c"GCC_14.0.0"),
        ("GCC 13", c"__truncdfbf2", c"GCC_13.0.0"),
        ("GCC 12", c"__divhc3", c"GCC_12.0.0"),
    ];
    for (name, sym, ver) in probes {
        // SAFETY: dlvsym with RTLD_DEFAULT and NUL-terminated strings.
        let p = unsafe { dlvsym(libc::RTLD_DEFAULT, sym.as_ptr(), ver.as_ptr()) };
        if !p.is_null() {
            return String::from(name);
        }
    }
    String::from("GCC <= 11")
}

/// Prints which libgcc the reference rows use.
pub fn report_libgcc() {
    eprintln!(
        "reference: libgcc_s = {} ({})",
        loaded_libgcc(),
        libgcc_version()
    );
}

/// Short runs: a full `cargo bench` of every group takes a few minutes on 2 cores.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .configure_from_args()
}

/// A row label for the loaded libgcc: `libgcc12`, `libgcc14`.
pub fn libgcc_label() -> String {
    format!(
        "libgcc{}",
        libgcc_version()
            .trim_start_matches("GCC ")
            .replace("<= ", "le")
    )
}
