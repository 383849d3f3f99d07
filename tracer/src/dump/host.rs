//! Host conveniences (`std`, x86_64 Linux): a dump of the calling thread, and a panic
//! hook that writes one to a file opened beforehand.

use std::sync::Mutex;

use clew_unwinder::arch::x86_64::Regs;

use super::{DumpWriter, ModuleOptions, Summary};
use crate::clock::{Clock, DefaultClock};
use crate::sink::{FileSink, Sink};

/// What a thread dump holds.
#[derive(Clone, Copy, Debug)]
pub struct ThreadDumpOptions {
    /// Written into the header (program name and version).
    pub producer: &'static str,
    /// At most this many stack bytes from the stack pointer up (default 64 KiB).
    pub max_stack: usize,
    pub modules: ModuleOptions,
}

impl Default for ThreadDumpOptions {
    fn default() -> Self {
        ThreadDumpOptions {
            producer: concat!("clew-tracer ", env!("CARGO_PKG_VERSION")),
            max_stack: 64 * 1024,
            modules: ModuleOptions::default(),
        }
    }
}

/// Readies what a panic-time dump needs without allocating later: the program's loaded
/// objects in the unwinder's registry, the backtrace rule cache, the TSC frequency.
pub fn prepare() {
    clew_unwinder::os::linux::ensure_loaded_objects();
    let mut pcs = [0usize; 4];
    let _ = clew_unwinder::backtrace(&mut pcs);
    #[cfg(target_arch = "x86_64")]
    crate::clock::calibrate_tsc();
}

/// Why the thread dump is written.
pub enum Why<'a> {
    Panic {
        message: &'a dyn core::fmt::Display,
        location: Option<&'a core::panic::Location<'a>>,
    },
    Requested(&'a str),
}

/// Writes a dump of the calling thread: header, `why`, its registers (here), stack
/// (bounded), backtrace, the [`clew_unwinder::global`] module map and the
/// [`global`](crate::global) recorder's events. Allocates nothing once [`prepare`]d.
#[inline(never)]
pub fn write_thread_dump<S: Sink>(sink: S, why: Why<'_>, opts: &ThreadDumpOptions) -> (S, Summary) {
    // The registers and the stack copy are this frame's: the writer lives in the callee,
    // below the copied range.
    let regs = Regs::capture();
    let mut pcs = [0usize; 128];
    let n = clew_unwinder::backtrace(&mut pcs);
    write_with(sink, why, opts, &regs, &pcs[..n])
}

#[inline(never)]
fn write_with<S: Sink>(
    sink: S,
    why: Why<'_>,
    opts: &ThreadDumpOptions,
    regs: &Regs,
    pcs: &[usize],
) -> (S, Summary) {
    let task = crate::recorder::thread_id();
    let clock = DefaultClock;
    let mut w = DumpWriter::new(sink);
    let _ = w.header(opts.producer, clock.info(), clock.now());
    let _ = match why {
        Why::Panic { message, location } => w.cause_panic(message, location, task),
        Why::Requested(reason) => w.cause(&crate::wire::Cause::Requested { reason, task }),
    };
    let _ = w.registers(task, regs);
    let _ = w.backtrace(task, pcs);
    let sp = regs.gpr[7];
    let [stack, _] = clew_unwinder::os::linux::current_stack_bounds();
    if stack.contains(&sp) {
        let len = (stack.end - sp).min(opts.max_stack as u64) as usize;
        // SAFETY: `sp..sp + len` is the live part of this thread's stack above our
        // caller's stack pointer; this frame and the writer lie below it.
        let _ = unsafe { w.stack_live(task, sp, len, (stack.end - sp) as usize > len) };
    }
    let _ = w.modules(clew_unwinder::global(), &opts.modules);
    let _ = w.events(crate::global());
    w.finish()
}

static HOOK_SINK: Mutex<Option<(FileSink, ThreadDumpOptions)>> = Mutex::new(None);

/// Installs a panic hook that records a panic event and writes a dump of the panicking
/// thread to `sink` (once: the first panic), then runs the previous hook. Calls
/// [`prepare`].
pub fn install_panic_hook(sink: FileSink, opts: ThreadDumpOptions) {
    prepare();
    *HOOK_SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some((sink, opts));
    let previous = std::panic::take_hook();
    std::panic::set_hook(std::boxed::Box::new(move |info| {
        crate::modules::panic_event(info.location());
        let taken = HOOK_SINK.try_lock().ok().and_then(|mut g| g.take());
        if let Some((sink, opts)) = taken {
            let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
            let _ = write_thread_dump(
                sink,
                Why::Panic {
                    message: &message,
                    location: info.location(),
                },
                &opts,
            );
        }
        previous(info);
    }));
}
