//! The post-mortem dump: written by the panic handler over COM2 (I/O port 0x2F8, QEMU's
//! second `-serial`), in clew-tracer's wire format, without allocating: the cause, the
//! registers, the backtrace, the live stack, every registered module (JIT modules with
//! their `.eh_frame` and function names) and the trace events. `clew qemu` captures it
//! and decodes it on the host.
//!
//! One dump a boot (the format allows one header a stream): the first panic after
//! [`arm`] writes it.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use clew_tracer::clock::{Clock, DefaultClock};
use clew_tracer::dump::{DumpWriter, ModuleOptions};
use clew_tracer::sink::{FnSink, SinkError};
use clew_unwinder::arch::x86_64::Regs;

use crate::runtime::PanicTrace;

const COM2: u16 = 0x2F8;

static ARMED: AtomicBool = AtomicBool::new(false);

/// Makes the next panic write a dump.
pub fn arm() {
    ARMED.store(true, Ordering::SeqCst);
}

unsafe extern "C" {
    /// The top of the boot stack (src/main.rs): the live stack is `rsp..boot_stack_top`.
    static boot_stack_top: u8;
}

/// The most stack bytes a dump copies.
const MAX_STACK: usize = 64 << 10;

/// Writes the dump if armed (and disarms). `regs` are the panic handler's.
#[inline(never)]
pub fn write_if_armed(info: &PanicInfo<'_>, regs: &Regs, trace: &PanicTrace) {
    if !ARMED.swap(false, Ordering::SeqCst) {
        return;
    }
    crate::serial::init_port(COM2);
    let sink = FnSink(|bytes: &[u8]| -> Result<(), SinkError> {
        crate::serial::write_bytes_to(COM2, bytes);
        Ok(())
    });
    let clock = DefaultClock;
    let mut w = DumpWriter::new(sink);
    let task = 0;
    let _ = w.header("clew-kernel", clock.info(), clock.now());
    let _ = w.cause_panic(&info.message(), info.location(), task);
    let _ = w.registers(task, regs);
    let mut pcs = [0usize; crate::runtime::MAX_FRAMES];
    for (p, &(pc, _)) in pcs.iter_mut().zip(&trace.pcs[..trace.len]) {
        *p = pc as usize;
    }
    let _ = w.backtrace(task, &pcs[..trace.len]);
    let sp = regs.gpr[Regs::RSP as usize];
    // SAFETY: a linker symbol; only its address is taken.
    let top = unsafe { &boot_stack_top as *const u8 as u64 };
    if sp < top {
        let len = ((top - sp) as usize).min(MAX_STACK);
        // SAFETY: `sp..sp + len` is the live boot stack above the panic handler's frame;
        // this function and the writer lie below `sp`.
        let _ = unsafe { w.stack_live(task, sp, len, (top - sp) as usize > len) };
    }
    let _ = w.modules(clew_unwinder::global(), &ModuleOptions::default());
    let _ = w.events(clew_tracer::global());
    let (_, summary) = w.finish();
    crate::println!(
        "clew-kernel: post-mortem dump written to COM2: {} records, {} bytes",
        summary.records,
        summary.bytes
    );
}
