//! Helpers shared by the integration tests: libgcc as the reference unwinder.
#![allow(dead_code)]

use std::ffi::c_void;

#[repr(C)]
pub struct UnwindContext {
    _private: [u8; 0],
}

pub type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> i32;

unsafe extern "C" {
    pub fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> i32;
    pub fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

extern "C" fn push_ip(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Vec` passed by `libgcc_trace`; `ctx` is libgcc's live context.
    let out = unsafe { &mut *(arg as *mut Vec<usize>) };
    out.push(unsafe { _Unwind_GetIP(ctx) });
    0
}

/// libgcc's backtrace from here: entry 0 is the return address into this function.
/// libgcc reports the outermost frame's undefined return address as a trailing 0,
/// which is dropped.
#[inline(never)]
pub fn libgcc_trace() -> Vec<usize> {
    let mut out = Vec::with_capacity(512);
    // SAFETY: the callback matches libgcc's `_Unwind_Trace_Fn`.
    unsafe { _Unwind_Backtrace(push_ip, (&raw mut out).cast()) };
    while out.last() == Some(&0) {
        out.pop();
    }
    std::hint::black_box(&out);
    out
}

/// clew's backtrace from here: entry 0 is the return address into this function.
#[inline(never)]
pub fn clew_trace() -> Vec<usize> {
    let mut buf = vec![0usize; 512];
    let n = clew_unwinder::backtrace(&mut buf);
    buf.truncate(n);
    std::hint::black_box(&buf);
    buf
}
