//! The running process as the stub's target: a thread that executes `int3` (a
//! compiled-in [`breakpoint`], or a breakpoint gdb inserted) or finishes a single step
//! enters the stub from the `SIGTRAP` handler, with the signal's `ucontext` as its
//! registers. Resuming is returning from the handler: the kernel restores the (possibly
//! modified) context; a step sets the trap flag in its `eflags`.
//!
//! Memory goes through `process_vm_readv`/`process_vm_writev` on the process itself, so
//! an unmapped address answers `EFAULT` instead of faulting the handler; code (read-only
//! mappings, JIT code included) is written through `/proc/self/mem`, which the kernel
//! lets write private read-only pages (copy-on-write), as a debugger's poke does.
//!
//! Threads: only the stopped thread is under gdb; others run on, and one that stops
//! meanwhile waits for the stub, then is served in turn. The handler allocates
//! and takes locks: sound for stops in code that holds none (JIT code, `clew.breakpoint`,
//! the panic hook), not for breakpoints inside the allocator.

use std::borrow::ToOwned;
use std::boxed::Box;
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::string::String;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::vec::Vec;

use gdbstub_arch::x86::reg::F80;

use crate::bridge::{Bridge, Config, Resume, StopCause};
use crate::machine::{BadAddress, FileError, Machine, NativeObject, Registers};
use crate::transport::Transport;

/// The x86 trap flag (single step) in `eflags`.
const TF: u64 = 0x100;

/// The stopped thread's context, and the process's loaded files.
pub struct ProcessMachine {
    uc: *mut libc::ucontext_t,
    files: HashMap<String, File>,
    mem: Option<File>,
    /// This process (`getpid` is a system call: once, not per read).
    pid: libc::pid_t,
}

// SAFETY: `uc` is only dereferenced by the thread that stopped, inside its signal
// handler (set at entry, cleared before return); the bridge lock serialises stops.
unsafe impl Send for ProcessMachine {}

impl ProcessMachine {
    /// The current process.
    pub fn new() -> Self {
        ProcessMachine {
            uc: std::ptr::null_mut(),
            files: HashMap::new(),
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
            mem: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/proc/self/mem")
                .ok(),
        }
    }

    fn gregs(&self) -> Option<&[i64; 23]> {
        // SAFETY: `uc` is the live context of the stopped thread (see `Send` above).
        unsafe { self.uc.as_ref().map(|u| &u.uc_mcontext.gregs) }
    }

    fn gregs_mut(&mut self) -> Option<&mut [i64; 23]> {
        // SAFETY: as above.
        unsafe { self.uc.as_mut().map(|u| &mut u.uc_mcontext.gregs) }
    }

    fn fpstate(&self) -> Option<&libc::_libc_fpstate> {
        // SAFETY: the kernel's signal frame holds the FPU state `fpregs` points to.
        unsafe { self.uc.as_ref().and_then(|u| u.uc_mcontext.fpregs.as_ref()) }
    }

    fn fpstate_mut(&mut self) -> Option<&mut libc::_libc_fpstate> {
        // SAFETY: as above.
        unsafe { self.uc.as_mut().and_then(|u| u.uc_mcontext.fpregs.as_mut()) }
    }
}

impl Default for ProcessMachine {
    fn default() -> Self {
        Self::new()
    }
}

/// gdb's register order → `gregs` indices.
const GDB_ORDER: [libc::c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RBX,
    libc::REG_RCX,
    libc::REG_RDX,
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
];

impl Machine for ProcessMachine {
    fn registers(&self) -> Registers {
        let mut r = Registers::default();
        let Some(g) = self.gregs() else {
            return r;
        };
        for (i, &k) in GDB_ORDER.iter().enumerate() {
            r.regs[i] = g[k as usize] as u64;
        }
        r.rip = g[libc::REG_RIP as usize] as u64;
        r.eflags = g[libc::REG_EFL as usize] as u32;
        let seg = g[libc::REG_CSGSFS as usize] as u64;
        r.segments.cs = (seg & 0xffff) as u32;
        r.segments.gs = ((seg >> 16) & 0xffff) as u32;
        r.segments.fs = ((seg >> 32) & 0xffff) as u32;
        r.segments.ss = (seg >> 48) as u32;
        if let Some(fp) = self.fpstate() {
            r.fpu.fctrl = fp.cwd as u32;
            r.fpu.fstat = fp.swd as u32;
            r.fpu.ftag = fp.ftw as u32;
            r.fpu.fop = fp.fop as u32;
            r.fpu.fioff = fp.rip as u32;
            r.fpu.fooff = fp.rdp as u32;
            r.mxcsr = fp.mxcsr;
            for (i, st) in fp._st.iter().enumerate() {
                let mut f: F80 = [0; 10];
                for (k, w) in st.significand.iter().enumerate() {
                    f[k * 2..k * 2 + 2].copy_from_slice(&w.to_le_bytes());
                }
                f[8..10].copy_from_slice(&st.exponent.to_le_bytes());
                r.st[i] = f;
            }
            for (i, x) in fp._xmm.iter().enumerate() {
                let e = x.element;
                r.xmm[i] = (e[0] as u128)
                    | ((e[1] as u128) << 32)
                    | ((e[2] as u128) << 64)
                    | ((e[3] as u128) << 96);
            }
        }
        r
    }

    fn set_registers(&mut self, r: &Registers) {
        if let Some(fp) = self.fpstate_mut() {
            fp.mxcsr = r.mxcsr;
            for (i, x) in fp._xmm.iter_mut().enumerate() {
                let v = r.xmm[i];
                x.element = [
                    v as u32,
                    (v >> 32) as u32,
                    (v >> 64) as u32,
                    (v >> 96) as u32,
                ];
            }
        }
        let Some(g) = self.gregs_mut() else {
            return;
        };
        for (i, &k) in GDB_ORDER.iter().enumerate() {
            g[k as usize] = r.regs[i] as i64;
        }
        g[libc::REG_RIP as usize] = r.rip as i64;
        // Only the flags user code may change (arithmetic, direction, trap flag).
        let keep = g[libc::REG_EFL as usize] as u64 & !0xdd5;
        g[libc::REG_EFL as usize] = (keep | (r.eflags as u64 & 0xdd5)) as i64;
    }

    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<usize, BadAddress> {
        if buf.is_empty() {
            return Ok(0);
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: the kernel checks the remote range (EFAULT when unmapped) and writes
        // at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n > 0 {
            return Ok(n as usize);
        }
        // process_vm_readv may be forbidden (seccomp): /proc/self/mem checks the same.
        match self.mem.as_ref().map(|m| m.read_at(buf, addr)) {
            Some(Ok(n)) if n > 0 => Ok(n),
            _ => Err(BadAddress),
        }
    }

    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), BadAddress> {
        if data.is_empty() {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: the kernel checks that the remote range is mapped writable.
        let n = unsafe { libc::process_vm_writev(self.pid, &local, 1, &remote, 1, 0) };
        if n == data.len() as isize {
            return Ok(());
        }
        // Read-only (code) pages: /proc/self/mem writes them as ptrace's poke does.
        match self.mem.as_ref().map(|m| m.write_all_at(data, addr)) {
            Some(Ok(())) => Ok(()),
            _ => Err(BadAddress),
        }
    }

    fn set_single_step(&mut self, on: bool) {
        if let Some(g) = self.gregs_mut() {
            let f = g[libc::REG_EFL as usize] as u64;
            g[libc::REG_EFL as usize] = if on { f | TF } else { f & !TF } as i64;
        }
    }

    fn native_objects(&self) -> Vec<NativeObject> {
        loaded_objects()
    }
    fn read_file(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        self.file(path)?.read_at(buf, offset).map_err(|_| FileError)
    }
    fn write_file(&mut self, path: &str, bytes: &[u8]) -> Result<(), FileError> {
        std::fs::write(path, bytes).map_err(|_| FileError)
    }
    fn file_size(&mut self, path: &str) -> Option<u64> {
        self.file(path).ok()?.metadata().ok().map(|m| m.len())
    }
}

impl ProcessMachine {
    /// An open loaded file (only files the loader lists: gdb reads nothing else).
    fn file(&mut self, path: &str) -> Result<&File, FileError> {
        if !self.files.contains_key(path) {
            if !loaded_objects().iter().any(|o| o.path == path) {
                return Err(FileError);
            }
            let f = File::open(path).map_err(|_| FileError)?;
            self.files.insert(path.to_owned(), f);
        }
        self.files.get(path).ok_or(FileError)
    }
}

/// The process's loaded ELF files (the executable first) with the runtime address of
/// their first `PT_LOAD`; the vDSO and other objects without a file are left out.
pub fn loaded_objects() -> Vec<NativeObject> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `dl_phdr_info` with its program headers and
        // a NUL-terminated name; `data` is the `Vec` below.
        unsafe {
            let info = &*info;
            let out = &mut *(data as *mut Vec<NativeObject>);
            let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            let Some(load) = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD) else {
                return 0;
            };
            let name = if info.dlpi_name.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(info.dlpi_name)
                    .to_string_lossy()
                    .into_owned()
            };
            let path = if name.is_empty() && out.is_empty() {
                match std::env::current_exe() {
                    Ok(p) => p.to_string_lossy().into_owned(),
                    Err(_) => return 0,
                }
            } else {
                name
            };
            if path.starts_with('/') && std::path::Path::new(&path).is_file() {
                out.push(NativeObject {
                    path,
                    segment: info.dlpi_addr.wrapping_add(load.p_vaddr),
                });
            }
        }
        0
    }
    let mut out: Vec<NativeObject> = Vec::new();
    // SAFETY: the callback only reads the loader's data and pushes to `out`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut out as *mut Vec<NativeObject>).cast()) };
    out
}

type HostBridge = Bridge<ProcessMachine, Box<dyn Transport + Send>>;

static BRIDGE: Mutex<Option<HostBridge>> = Mutex::new(None);

/// A signal number the next `int3` of [`stop_with_signal`] reports (0: none).
static PENDING_SIGNAL: AtomicU8 = AtomicU8::new(0);

std::thread_local! {
    /// Set while this thread is inside the stub: a panic, fault or int3 there must not
    /// enter it again (its lock is held by this very thread).
    static IN_STUB_HERE: Cell<bool> = const { Cell::new(false) };
}

fn in_stub_here() -> bool {
    IN_STUB_HERE.with(Cell::get)
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the stub: `SIGTRAP` now enters it. gdb connects over `transport` at the
/// first stop.
pub fn install(transport: Box<dyn Transport + Send>, config: Config) -> std::io::Result<()> {
    let bridge = Bridge::new(ProcessMachine::new(), transport, config);
    *BRIDGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bridge);
    // SAFETY: installs a handler with the three-argument signature SA_SIGINFO expects.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigtrap as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGTRAP, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    INSTALLED.store(true, Ordering::SeqCst);
    // gdb's ^C while the program runs: a thread that looks for it (the stub reads only
    // at stops) and signals the thread gdb last saw stopped.
    std::thread::Builder::new()
        .name("clew-gdb-interrupt".into())
        .spawn(watch_interrupts)?;
    Ok(())
}

/// The thread that last stopped in the stub (`pthread_t`; 0: none yet).
static STOPPED_THREAD: AtomicUsize = AtomicUsize::new(0);

fn watch_interrupts() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let Ok(mut guard) = BRIDGE.try_lock() else {
            // A thread is stopped in the stub (it reads gdb itself).
            continue;
        };
        let interrupt = guard.as_mut().is_some_and(|b| b.poll_interrupt());
        drop(guard);
        let thread = STOPPED_THREAD.load(Ordering::SeqCst);
        if interrupt && thread != 0 {
            PENDING_SIGNAL.store(2, Ordering::SeqCst); // SIGINT, as gdb expects for ^C
            // SAFETY: signals a thread of this process that entered the stub before;
            // the SIGTRAP handler serves the stop at whatever it was running.
            unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGTRAP) };
        }
    }
}

/// Faults that stop in JIT code before the runtime sees them.
const FAULTS: [libc::c_int; 4] = [libc::SIGILL, libc::SIGSEGV, libc::SIGFPE, libc::SIGBUS];

/// The handlers [`install_fault_handlers`] replaced, by signal number.
static PREVIOUS: Mutex<[Option<libc::sigaction>; 32]> = Mutex::new([None; 32]);

/// Makes a fault (`SIGILL`, `SIGSEGV`, `SIGFPE`, `SIGBUS`) in a registered JIT module
/// stop for gdb first, at the faulting instruction, then go to the handler that was
/// installed before (a JIT runtime's trap handler: Wasmtime turns the fault into a
/// trap). Call it after the runtime installed its handlers. Faults elsewhere go
/// straight to the previous handler.
pub fn install_fault_handlers() -> std::io::Result<()> {
    let mut prev = PREVIOUS.lock().unwrap_or_else(|e| e.into_inner());
    for sig in FAULTS {
        // SAFETY: installs a three-argument SA_SIGINFO handler, saving the old one.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            // Not on the alternate stack: a runtime's (Wasmtime's is 64 KiB) is too small
            // for the stub. A fault from running out of stack then kills the process,
            // which it would have anyway without a stub.
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &sa, &mut old) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            prev[sig as usize] = Some(old);
        }
    }
    Ok(())
}

/// gdb's signal numbers (the remote protocol's) for the faults; Linux's differ for
/// SIGBUS.
fn gdb_signal(sig: libc::c_int) -> u8 {
    match sig {
        libc::SIGILL => 4,
        libc::SIGTRAP => 5,
        libc::SIGABRT => 6,
        libc::SIGFPE => 8,
        libc::SIGBUS => 10,
        libc::SIGSEGV => 11,
        _ => 0,
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let uc = ctx as *mut libc::ucontext_t;
    // SAFETY: the kernel passes the interrupted context to an SA_SIGINFO handler.
    let pc = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] } as usize;
    let in_jit = clew_unwinder::global()
        .pin()
        .find_module(pc)
        .is_some_and(|m| m.kind() == clew_unwinder::ModuleKind::Jit);
    if in_jit && !in_stub_here() {
        enter(uc, StopCause::Signal(gdb_signal(sig)));
    }
    // Hand the fault on, as if this handler had never been there.
    let prev = PREVIOUS.try_lock().ok().and_then(|p| p[sig as usize]);
    let Some(prev) = prev else {
        return;
    };
    // SAFETY: calls the saved handler with the arguments the kernel gave us, as the
    // kernel would have; SIG_DFL is restored so that returning re-raises the fault.
    unsafe {
        match prev.sa_sigaction {
            libc::SIG_DFL => {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::SIG_IGN => {}
            h if prev.sa_flags & libc::SA_SIGINFO != 0 => {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(h);
                f(sig, info, ctx);
            }
            h => {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                f(sig);
            }
        }
    }
}

/// Whether [`install`] has run.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

/// The process is exiting with `code`: a gdb waiting for the next stop hears so.
pub fn exited(code: i32) {
    if in_stub_here() {
        return;
    }
    if let Ok(mut b) = BRIDGE.lock()
        && let Some(bridge) = b.as_mut()
    {
        bridge.exited(code as u8);
    }
}

/// Stops here for gdb (an `int3`): gdb sees `SIGTRAP` with the PC in this function,
/// its caller next in `bt`.
#[inline(never)]
pub fn breakpoint() {
    // SAFETY: `int3` raises SIGTRAP, which the installed handler serves and returns
    // from, after the instruction.
    unsafe { core::arch::asm!("int3") };
}

/// Stops here for gdb reporting `signal` (e.g. 6, SIGABRT, from a panic hook).
#[inline(never)]
pub fn stop_with_signal(signal: u8) {
    if in_stub_here() || !installed() {
        return;
    }
    PENDING_SIGNAL.store(signal, Ordering::SeqCst);
    // SAFETY: as in `breakpoint`.
    unsafe { core::arch::asm!("int3") };
}

extern "C" fn on_sigtrap(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    let cause = match PENDING_SIGNAL.swap(0, Ordering::SeqCst) {
        0 if code == libc::TRAP_TRACE => StopCause::Step,
        0 => StopCause::Trap,
        s => StopCause::Signal(s),
    };
    enter(ctx.cast(), cause);
}

/// Serves gdb for a stop of this thread with context `uc`.
fn enter(uc: *mut libc::ucontext_t, cause: StopCause) {
    if in_stub_here() {
        // A stop inside the stub itself (a breakpoint in code it runs): go on.
        return;
    }
    // Another thread stopped in the stub holds the lock: this one waits for it to
    // resume, then is served in turn.
    let mut guard = BRIDGE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bridge) = guard.as_mut() else {
        return;
    };
    bridge.machine_mut().uc = uc;
    // SAFETY: pthread_self has no preconditions.
    STOPPED_THREAD.store(unsafe { libc::pthread_self() } as usize, Ordering::SeqCst);
    IN_STUB_HERE.with(|c| c.set(true));
    // A bug in the stub must not take the program down with it: resume instead.
    let resume = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bridge.stop(cause)))
        .unwrap_or(Resume::Continue);
    IN_STUB_HERE.with(|c| c.set(false));
    bridge.machine_mut().uc = std::ptr::null_mut();
    drop(guard);
    if resume == Resume::Kill {
        // SAFETY: ends the process without running anything else in this handler.
        unsafe { libc::_exit(137) };
    }
}
