//! `clew run`'s failure capture: the registers, stack and clew backtrace of the failing
//! thread at a wasm trap (from the signal context) or a host panic, and with
//! `--dump FILE` a post-mortem dump of it (`clew decode FILE` reads it).
//!
//! Traps. Wasmtime turns a fault in JIT code (SIGILL for `unreachable`, SIGFPE for a
//! division by zero, SIGSEGV for an out-of-bounds access) into a `Trap` from its signal
//! handler, which rewrites the context to resume in its trap handling: by the time
//! `Func::call` returns the faulting frames are gone. [`arm`] therefore installs a
//! handler *after* the engine installed Wasmtime's (so this one runs first) that copies
//! the fault context's registers, a bounded copy of the stack above its stack pointer
//! and clew's backtrace walked from that context into preallocated static storage (no
//! allocation, no lock: only the registry's async-signal-safe lookups), then calls the
//! previous (Wasmtime's) handler. The trap report then shows clew's backtrace at the
//! fault point, and the dump carries exactly that state.
//!
//! Panics. With `--dump`, a panic hook captures the registers and walks the stack in
//! one frame, and writes the dump from a frame below it, copying the live stack from
//! the captured stack pointer up: the dump's registers, stack and PCs are consistent, so
//! `clew decode` re-unwinds the same frames on the host.
//!
//! The dump's module map holds every module of clew's registry: the loaded objects (with
//! their file paths and build-ids, so the host finds the files) and the JIT modules with
//! their `.eh_frame` and function symbols.

use std::cell::UnsafeCell;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use clew_symbolizer::Symbolizer;
use clew_tracer::dump::{DumpWriter, ModuleOptions, Summary};
use clew_tracer::sink::FileSink;
use clew_tracer::wire::TrapKind;
use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::{LiveMemory, Native, Unwinder};

/// Most PCs kept of a backtrace.
pub const MAX_PCS: usize = 256;
/// Most stack bytes copied above the failing frame's stack pointer.
pub const MAX_STACK: usize = 128 * 1024;

/// What `clew run` arms before calling into wasm; see the [module docs](self).
pub struct Armed {
    dump: Option<std::path::PathBuf>,
}

/// The dump file, taken by the first failure that writes it.
static DUMP_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Readies the capture for the calling thread (the one that calls into wasm): installs
/// the fault handlers (call after the Wasmtime engine was created), and with `dump`
/// creates the file and installs a panic hook that writes the dump and hands the
/// backtrace it captured to `on_panic_pcs` (what `clew run` prints).
pub fn arm(dump: Option<&Path>, on_panic_pcs: fn(Vec<usize>)) -> Result<Armed, String> {
    if let Some(path) = dump {
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        *DUMP_FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
        clew_tracer::dump::host::prepare();
        install_panic_hook(on_panic_pcs);
    } else {
        clew_unwinder::os::linux::ensure_loaded_objects();
    }
    let [stack, _] = clew_unwinder::os::linux::current_stack_bounds();
    STACK_START.store(stack.start, Ordering::Relaxed);
    STACK_END.store(stack.end, Ordering::Relaxed);
    FAULT.state.store(ARMED, Ordering::Release);
    install_fault_handlers();
    Ok(Armed {
        dump: dump.map(Path::to_owned),
    })
}

impl Drop for Armed {
    /// Nothing failed: the dump file created in advance is removed again.
    fn drop(&mut self) {
        let unused = DUMP_FILE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some();
        if let (true, Some(path)) = (unused, &self.dump) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Armed {
    /// After a trap: prints clew's backtrace captured at the fault (when the trap came
    /// from a signal), records a trap event and, with `--dump`, writes the dump.
    pub fn trap(
        &self,
        error: &wasmtime::Error,
        sym: &Symbolizer,
        reporter: &crate::report::Reporter,
        out: &mut dyn std::io::Write,
    ) {
        let fault = take_fault();
        match fault {
            Some(f) => {
                reporter.note(
                    &format!(
                        "clew backtrace at the fault ({}, innermost first):",
                        signal_name(f.signo)
                    ),
                    out,
                );
                let frames = reporter.frames_at_fault(&f.pcs[..f.n_pcs], sym);
                reporter.backtrace("fault", &frames, out);
                clew_tracer::modules::trap_event(
                    TrapKind::Signal(f.signo),
                    f.regs[16],
                    f.address(),
                    f.code as u64,
                );
            }
            None => reporter.note(
                "(no fault context: the trap was raised by the runtime, not a signal)",
                out,
            ),
        }
        if self.dump.is_none() {
            return;
        }
        let Some(file) = DUMP_FILE.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let summary = match fault {
            Some(f) => write_trap_dump(file, f, &format!("{error:#}")),
            None => requested_capture(file, &format!("wasm trap: {error:#}")),
        };
        report_written(&summary);
    }
}

/// Says on stderr where the dump went (stdout is the run's report, maybe JSON lines).
fn report_written(s: &Summary) {
    match s.error {
        None => eprintln!(
            "clew run: dump written: {} records, {} events, {} bytes",
            s.records, s.events, s.bytes
        ),
        Some(e) => eprintln!("clew run: writing the dump: {e}"),
    }
}

// ---- the fault handler -------------------------------------------------------------

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const CAPTURING: u8 = 2;
const CAPTURED: u8 = 3;

static STACK_START: AtomicU64 = AtomicU64::new(0);
static STACK_END: AtomicU64 = AtomicU64::new(0);

/// The state of the thread at a fault, filled by the signal handler.
pub struct Fault {
    pub signo: i32,
    pub code: i32,
    pub si_addr: u64,
    /// DWARF order: rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8–r15, rip.
    pub regs: [u64; 17],
    pub pcs: [usize; MAX_PCS],
    pub n_pcs: usize,
    pub stack_start: u64,
    pub stack_len: usize,
    /// The stack went on past the copy.
    pub truncated: bool,
    pub stack: [u8; MAX_STACK],
}

impl Fault {
    /// The faulting data address, for the signals that have one.
    pub fn address(&self) -> Option<u64> {
        matches!(self.signo, libc::SIGSEGV | libc::SIGBUS).then_some(self.si_addr)
    }
}

struct FaultSlot {
    state: AtomicU8,
    fault: UnsafeCell<Fault>,
}

// SAFETY: `fault` is written only by the handler that moved `state` from ARMED to
// CAPTURING, and read only after `state` is CAPTURED (acquire), by `take_fault`.
unsafe impl Sync for FaultSlot {}

static FAULT: FaultSlot = FaultSlot {
    state: AtomicU8::new(IDLE),
    fault: UnsafeCell::new(Fault {
        signo: 0,
        code: 0,
        si_addr: 0,
        regs: [0; 17],
        pcs: [0; MAX_PCS],
        n_pcs: 0,
        stack_start: 0,
        stack_len: 0,
        truncated: false,
        stack: [0; MAX_STACK],
    }),
};

const SIGNALS: [libc::c_int; 4] = [libc::SIGILL, libc::SIGFPE, libc::SIGSEGV, libc::SIGBUS];

struct Previous(UnsafeCell<[libc::sigaction; 4]>);
// SAFETY: written once per signal by `sigaction` before our handler for it is live (the
// same call installs it), read only by the handler afterwards.
unsafe impl Sync for Previous {}
// SAFETY: an all-zero `sigaction` is a valid value (SIG_DFL, empty mask).
static PREVIOUS: Previous = Previous(UnsafeCell::new(unsafe { std::mem::zeroed() }));
static INSTALLED: OnceLock<()> = OnceLock::new();

fn install_fault_handlers() {
    INSTALLED.get_or_init(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: a handler with the SA_SIGINFO signature; the previous action is
            // stored where the handler reads it, by the same call that installs it.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_fault as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut act.sa_mask);
                let prev = (PREVIOUS.0.get() as *mut libc::sigaction).add(i);
                libc::sigaction(sig, &act, prev);
            }
        }
    });
}

/// The handler: capture once (when armed and the fault is on the armed thread's stack),
/// then hand the signal to the previous handler.
extern "C" fn on_fault(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if FAULT
        .state
        .compare_exchange(ARMED, CAPTURING, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        // SAFETY: we own the slot (CAPTURING); `info` and `ctx` are the kernel's.
        let ok = unsafe { capture_fault(&mut *FAULT.fault.get(), signo, info, ctx) };
        FAULT
            .state
            .store(if ok { CAPTURED } else { ARMED }, Ordering::Release);
    }
    // SAFETY: forwarding the kernel's arguments to the handler that was installed before.
    unsafe { chain(signo, info, ctx) }
}

/// Fills `f` from the signal context. Allocates nothing, takes no lock.
///
/// # Safety
/// `info` and `ctx` are a SA_SIGINFO handler's arguments.
unsafe fn capture_fault(
    f: &mut Fault,
    signo: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) -> bool {
    // SAFETY: the kernel passes a ucontext_t for SA_SIGINFO handlers.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    let g = &uc.uc_mcontext.gregs;
    let order = [
        libc::REG_RAX,
        libc::REG_RDX,
        libc::REG_RCX,
        libc::REG_RBX,
        libc::REG_RSI,
        libc::REG_RDI,
        libc::REG_RBP,
        libc::REG_RSP,
        libc::REG_R8,
        libc::REG_R9,
        libc::REG_R10,
        libc::REG_R11,
        libc::REG_R12,
        libc::REG_R13,
        libc::REG_R14,
        libc::REG_R15,
        libc::REG_RIP,
    ];
    let mut regs = Regs::default();
    for (r, &i) in regs.gpr.iter_mut().zip(&order) {
        *r = g[i as usize] as u64;
    }
    let stack = STACK_START.load(Ordering::Relaxed)..STACK_END.load(Ordering::Relaxed);
    let sp = regs.gpr[7];
    if !stack.contains(&sp) {
        // Another thread's fault, or a stack we do not know: not ours to capture.
        return false;
    }
    f.signo = signo;
    // SAFETY: `info` is valid for the handler's duration.
    unsafe {
        f.code = (*info).si_code;
        f.si_addr = (*info).si_addr() as u64;
    }
    f.regs = regs.gpr;
    let bounds = [stack.clone()];
    let mem = LiveMemory::with_bounds(&bounds);
    let unwinder = Unwinder::<Native>::new(clew_unwinder::global());
    // A fault context: the PC is the faulting instruction's (exact), not a return address.
    f.n_pcs = unwinder.trace_into(regs, true, &mem, None, &mut f.pcs);
    let len = ((stack.end - sp) as usize).min(MAX_STACK);
    // SAFETY: `sp..sp + len` lies inside the faulting thread's stack (checked above),
    // which is mapped; this handler runs on the signal stack, not on it.
    unsafe { std::ptr::copy_nonoverlapping(sp as *const u8, f.stack.as_mut_ptr(), len) };
    f.stack_start = sp;
    f.stack_len = len;
    f.truncated = (stack.end - sp) as usize > len;
    true
}

/// Calls the handler that was installed before ours (Wasmtime's), as the kernel would.
///
/// # Safety
/// The arguments of a SA_SIGINFO handler.
unsafe fn chain(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(i) = SIGNALS.iter().position(|&s| s == signo) else {
        return;
    };
    // SAFETY: written before our handler was installed; never written again.
    let prev = unsafe { &(*PREVIOUS.0.get())[i] };
    match prev.sa_sigaction {
        libc::SIG_IGN => {}
        libc::SIG_DFL => {
            // Restore the default action and return: the faulting instruction runs
            // again and the default action (a core dump) happens.
            // SAFETY: resetting this signal's disposition to the default.
            unsafe { libc::signal(signo, libc::SIG_DFL) };
        }
        h if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous handler's own signature (SA_SIGINFO).
            let h: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(h) };
            h(signo, info, ctx)
        }
        h => {
            // SAFETY: a plain `void (*)(int)` handler.
            let h: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
            h(signo)
        }
    }
}

/// The fault the handler captured since [`arm`], if any.
fn take_fault() -> Option<&'static Fault> {
    if FAULT.state.load(Ordering::Acquire) != CAPTURED {
        return None;
    }
    // SAFETY: CAPTURED: the handler is done with the slot, and no handler writes it
    // again until it is re-armed (by `arm`, after the caller is done with it).
    Some(unsafe { &*FAULT.fault.get() })
}

fn signal_name(signo: i32) -> &'static str {
    match signo {
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

// ---- the panic hook ------------------------------------------------------------------

fn install_panic_hook(on_pcs: fn(Vec<usize>)) {
    std::panic::set_hook(Box::new(move |info| {
        clew_tracer::modules::panic_event(info.location());
        let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
        panic_capture(&message, info.location(), on_pcs);
    }));
}

/// Captures the registers here and walks the stack from them (the PCs `clew run`
/// prints), then writes the dump from a callee: this frame and its callers stay intact
/// in the copied stack, so the dump re-unwinds to the same PCs.
#[inline(never)]
fn panic_capture(
    message: &dyn std::fmt::Display,
    location: Option<&std::panic::Location<'_>>,
    on_pcs: fn(Vec<usize>),
) {
    let regs = Regs::capture();
    let mut pcs = [0usize; MAX_PCS];
    let n = live_walk(&regs, &mut pcs);
    on_pcs(pcs[..n].to_vec());
    let file = DUMP_FILE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(file) = file {
        let s = write_live_dump(file, Why::Panic(message, location), &regs, &pcs[..n]);
        report_written(&s);
    }
}

/// clew's walk from `regs` (a context captured by a call), bounded by this thread's stack.
#[inline(never)]
fn live_walk(regs: &Regs, pcs: &mut [usize]) -> usize {
    let bounds = clew_unwinder::os::linux::current_stack_bounds();
    let mem = LiveMemory::with_bounds(&bounds);
    Unwinder::<Native>::new(clew_unwinder::global()).trace_into(*regs, false, &mem, None, pcs)
}

/// Why a dump of the live stack is written.
enum Why<'a> {
    Panic(
        &'a dyn std::fmt::Display,
        Option<&'a std::panic::Location<'a>>,
    ),
    Requested(&'a str),
}

/// A dump of the calling thread from `regs` (captured by the caller, whose frame and
/// callers lie above this one on the stack) and the PCs walked from them.
#[inline(never)]
fn write_live_dump(file: File, why: Why<'_>, regs: &Regs, pcs: &[usize]) -> Summary {
    let task = task();
    let mut w = start(file);
    let _ = match why {
        Why::Panic(message, location) => w.cause_panic(message, location, task),
        Why::Requested(reason) => w.cause(&clew_tracer::wire::Cause::Requested { reason, task }),
    };
    let _ = w.registers(task, regs);
    let _ = w.backtrace(task, pcs);
    let sp = regs.gpr[7];
    let [stack, _] = clew_unwinder::os::linux::current_stack_bounds();
    if stack.contains(&sp) {
        let len = (stack.end - sp).min(MAX_STACK as u64) as usize;
        // SAFETY: `sp..sp + len` is the live stack above the capturing frame's stack
        // pointer; this frame (and the writer in it) lies below it.
        let _ = unsafe { w.stack_live(task, sp, len, (stack.end - sp) as usize > len) };
    }
    finish(w)
}

fn write_trap_dump(file: File, f: &Fault, wasmtime: &str) -> Summary {
    let task = task();
    let mut w = start(file);
    let _ = w.cause_trap(
        TrapKind::Signal(f.signo),
        f.regs[16],
        f.address(),
        f.code as u64,
        task,
    );
    let _ = w.note(&format!("wasmtime: {wasmtime}"));
    let _ = w.registers_raw(task, clew_tracer::wire::arch::X86_64, &f.regs);
    let _ = w.backtrace(task, &f.pcs[..f.n_pcs]);
    let _ = w.stack(task, f.stack_start, &f.stack[..f.stack_len], f.truncated);
    finish(w)
}

/// A trap without a signal context (raised by the runtime, e.g. from a libcall): the
/// cause is a request naming it; the registers, PCs and stack are this thread's, here.
#[inline(never)]
fn requested_capture(file: File, reason: &str) -> Summary {
    let regs = Regs::capture();
    let mut pcs = [0usize; MAX_PCS];
    let n = live_walk(&regs, &mut pcs);
    write_live_dump(file, Why::Requested(reason), &regs, &pcs[..n])
}

fn task() -> u64 {
    // SAFETY: `gettid` has no preconditions.
    (unsafe { libc::gettid() }) as u64
}

fn start(file: File) -> DumpWriter<FileSink> {
    use clew_tracer::clock::{Clock, DefaultClock};
    let clock = DefaultClock;
    let mut w = DumpWriter::new(clew_tracer::sink::IoSink(file));
    let _ = w.header(
        concat!("clew run ", env!("CARGO_PKG_VERSION")),
        clock.info(),
        clock.now(),
    );
    w
}

fn finish(mut w: DumpWriter<FileSink>) -> Summary {
    // Loaded objects named by their files with build-ids (read by `prepare`), JIT
    // modules with their `.eh_frame` and symbols.
    let modules = ModuleOptions {
        build_id: Some(clew_tracer::dump::host::object_build_id),
        ..ModuleOptions::default()
    };
    let _ = w.modules(clew_unwinder::global(), &modules);
    let _ = w.events(clew_tracer::global());
    let (_, summary) = w.finish();
    summary
}
