//! Host conveniences (`std`, x86_64 Linux): a dump of the calling thread, and a panic
//! hook that writes one to a file opened beforehand; the program's loaded objects' files
//! and build-ids for the module map (read in [`prepare`], so a dump allocates nothing).

use std::ffi::CStr;
use std::ops::Range;
use std::string::{String, ToString};
use std::sync::{Mutex, OnceLock};
use std::vec::Vec;

use clew_unwinder::Module;

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
            modules: ModuleOptions {
                build_id: Some(object_build_id),
                ..ModuleOptions::default()
            },
        }
    }
}

/// Readies what a panic-time dump needs without allocating later: the program's loaded
/// objects in the unwinder's registry, the backtrace rule cache, the TSC frequency.
pub fn prepare() {
    clew_unwinder::os::linux::ensure_loaded_objects();
    let _ = OBJECTS_READY.get_or_init(objects);
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
    // below the copied range. The PCs are walked from these very registers, so a host
    // re-unwind of the dump finds exactly them.
    let regs = Regs::capture();
    let mut pcs = [0usize; 128];
    let bounds = clew_unwinder::os::linux::current_stack_bounds();
    let mem = clew_unwinder::LiveMemory::with_bounds(&bounds);
    let n = clew_unwinder::Unwinder::<clew_unwinder::Native>::new(clew_unwinder::global())
        .trace_into(regs, false, &mem, None, &mut pcs);
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

/// A loaded object: its segments' runtime range, file and build-id.
struct ObjectInfo {
    range: Range<u64>,
    path: String,
    build_id: Option<Vec<u8>>,
}

/// The program's loaded objects, read once (by [`prepare`]; the loader's lock and
/// allocation happen then, not at dump time).
fn objects() -> &'static [ObjectInfo] {
    static OBJECTS: OnceLock<Vec<ObjectInfo>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = Vec::new();
        clew_unwinder::os::linux::find_loaded_object(|info| {
            out.extend(object_info(info, &exe));
            None::<()>
        });
        out
    })
}

fn object_info(info: &libc::dl_phdr_info, exe: &str) -> Option<ObjectInfo> {
    let base = info.dlpi_addr;
    let phdrs = clew_unwinder::os::linux::program_headers(info);
    let loads = phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD);
    let lo = loads.clone().map(|p| base + p.p_vaddr).min()?;
    let hi = loads.map(|p| base + p.p_vaddr + p.p_memsz).max()?;
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string owned by the loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    let path = if name.is_empty() {
        exe.to_string()
    } else {
        name
    };
    let build_id = phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_NOTE)
        .find_map(|p| {
            // SAFETY: PT_NOTE segments of a loaded object are mapped and readable.
            let notes = unsafe {
                core::slice::from_raw_parts((base + p.p_vaddr) as *const u8, p.p_memsz as usize)
            };
            gnu_build_id(notes)
        });
    Some(ObjectInfo {
        range: lo..hi,
        path,
        build_id,
    })
}

/// The `NT_GNU_BUILD_ID` descriptor in a run of ELF notes (4-byte aligned).
fn gnu_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], i: usize| -> Option<usize> {
        Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let align = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (word(notes, 0)?, word(notes, 4)?, word(notes, 8)?);
        let name = notes.get(12..12 + namesz)?;
        let desc_at = 12 + align(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == 3 && name == b"GNU\0" {
            return Some(desc.to_vec());
        }
        notes = notes.get(desc_at + align(descsz)..)?;
    }
    None
}

/// The loaded object holding a (non-JIT) module, from the table [`prepare`] read.
fn object_of(m: &Module) -> Option<&'static ObjectInfo> {
    if m.kind() == clew_unwinder::ModuleKind::Jit {
        return None;
    }
    let objects = OBJECTS_READY.get()?;
    let start = m.text().start as u64;
    objects.iter().find(|o| o.range.contains(&start))
}

/// Set once [`objects`] ran: dump-time lookups never read the loader's list themselves.
static OBJECTS_READY: OnceLock<&'static [ObjectInfo]> = OnceLock::new();

/// The file of a loaded object's module (the main executable's path rather than the
/// loader's empty name), once [`prepare`]d.
pub fn object_path(m: &Module) -> Option<&'static str> {
    object_of(m).map(|o| o.path.as_str())
}

/// The `NT_GNU_BUILD_ID` of a loaded object's module, once [`prepare`]d: a
/// [`BuildIdFn`](super::BuildIdFn) for [`ModuleOptions::build_id`].
pub fn object_build_id(m: &Module) -> Option<&'static [u8]> {
    object_of(m)?.build_id.as_deref()
}
