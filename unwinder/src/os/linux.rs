//! Linux: find the loaded objects of the running program and their `PT_GNU_EH_FRAME`
//! (through `dl_iterate_phdr`), so native frames unwind without any registration; and a
//! ready [`backtrace`] bounded to the calling thread's stack.

use std::cell::Cell;
use std::ffi::CStr;
use std::ops::Range;
use std::string::String;
use std::vec::Vec;

use crate::registry::{ModuleDesc, ModuleKind, Registry};
use crate::{
    LiveMemory, ModuleProvider, Native, ProvidedModule, Registers, UnwindCache, Unwinder, eh_frame,
};

/// One loaded object's unwind sections, as found in its program headers.
#[derive(Clone, Debug)]
pub struct LoadedObject {
    pub name: String,
    /// Its executable `PT_LOAD` segment(s), lowest to highest.
    pub text: Range<usize>,
    pub eh_frame_hdr: &'static [u8],
    pub eh_frame: &'static [u8],
}

/// Lists the loaded objects that have a `PT_GNU_EH_FRAME` header.
pub fn loaded_objects() -> Vec<LoadedObject> {
    let mut out: Vec<LoadedObject> = Vec::new();
    find_loaded_object(|info| {
        out.extend(object_of(info));
        None::<()>
    });
    out
}

/// Calls `f` with the `dl_iterate_phdr` record of each loaded object, in the loader's
/// order, until it returns `Some`, and returns that. Takes the loader's lock: not for
/// signal handlers. The one place the crates walk the loader's list.
pub fn find_loaded_object<T>(mut f: impl FnMut(&libc::dl_phdr_info) -> Option<T>) -> Option<T> {
    struct State<'a, T> {
        f: &'a mut dyn FnMut(&libc::dl_phdr_info) -> Option<T>,
        found: Option<T>,
    }
    unsafe extern "C" fn callback<T>(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `State` passed below; `info` is valid for this call.
        let (state, info) = unsafe { (&mut *(data as *mut State<'_, T>), &*info) };
        match (state.f)(info) {
            Some(v) => {
                state.found = Some(v);
                1
            }
            None => 0,
        }
    }
    let mut state = State {
        f: &mut f,
        found: None,
    };
    // SAFETY: the callback only reads the headers the loader passes it.
    unsafe { libc::dl_iterate_phdr(Some(callback::<T>), (&raw mut state).cast()) };
    state.found
}

/// The program headers of a `dl_iterate_phdr` record.
pub fn program_headers(info: &libc::dl_phdr_info) -> &[libc::Elf64_Phdr] {
    if info.dlpi_phdr.is_null() {
        return &[];
    }
    // SAFETY: the loader passes `dlpi_phnum` program headers at `dlpi_phdr`, valid while
    // the record is.
    unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
}

/// The unwind sections of one object, found without allocating.
fn sections_of(info: &libc::dl_phdr_info) -> Option<ProvidedModule> {
    let base = info.dlpi_addr as usize;
    let phdrs = program_headers(info);
    let hdr = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME)?;
    let hdr_addr = base + hdr.p_vaddr as usize;
    // SAFETY: PT_GNU_EH_FRAME names mapped, readable bytes of this object.
    let hdr_bytes: &'static [u8] =
        unsafe { std::slice::from_raw_parts(hdr_addr as *const u8, hdr.p_memsz as usize) };
    let bases = gimli::BaseAddresses::default().set_eh_frame_hdr(hdr_addr as u64);
    let parsed = gimli::EhFrameHdr::new(hdr_bytes, gimli::NativeEndian)
        .parse(&bases, 8)
        .ok()?;
    let gimli::Pointer::Direct(eh_frame_addr) = parsed.eh_frame_ptr() else {
        return None;
    };
    let eh_frame_addr = eh_frame_addr as usize;
    let loads = || {
        phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD).map(|p| {
            (
                p,
                base + p.p_vaddr as usize..base + (p.p_vaddr + p.p_memsz) as usize,
            )
        })
    };
    let seg = loads()
        .map(|(_, r)| r)
        .find(|r| r.contains(&eh_frame_addr))?;
    // SAFETY: `.eh_frame` lies in this mapped segment; the walk stops at its end.
    let len = unsafe {
        eh_frame::zero_terminated_len(eh_frame_addr as *const u8, Some(seg.end - eh_frame_addr))
    }
    .ok()?;
    // SAFETY: `len` bytes inside the segment, mapped as long as the object stays loaded.
    let eh_frame: &'static [u8] =
        unsafe { std::slice::from_raw_parts(eh_frame_addr as *const u8, len) };
    let exec = || {
        loads()
            .filter(|(p, _)| p.p_flags & libc::PF_X != 0)
            .map(|(_, r)| r)
    };
    let text = exec().map(|r| r.start).min()?..exec().map(|r| r.end).max()?;
    Some(ProvidedModule {
        text,
        eh_frame,
        eh_frame_hdr: Some(hdr_bytes),
    })
}

fn object_of(info: &libc::dl_phdr_info) -> Option<LoadedObject> {
    let s = sections_of(info)?;
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string owned by the loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    let name = if name.is_empty() {
        String::from("[main executable]")
    } else {
        name
    };
    Some(LoadedObject {
        name,
        text: s.text,
        eh_frame_hdr: s.eh_frame_hdr?,
        eh_frame: s.eh_frame,
    })
}

/// A [`ModuleProvider`] that asks the dynamic loader (`dl_iterate_phdr`) for the object
/// holding a PC, as libgcc does: it finds objects `dlopen`ed after the registry was
/// filled. It takes the loader's lock, so it is not for signal handlers.
pub struct DlIteratePhdr;

impl ModuleProvider for DlIteratePhdr {
    fn find_module(&self, pc: usize) -> Option<ProvidedModule> {
        find_loaded_object(|info| sections_of(info).filter(|m| m.text.contains(&pc)))
    }
}

/// Registers every loaded object not registered yet as a [`ModuleKind::Static`] module.
/// Returns how many were added. Objects whose CFI is malformed are skipped.
pub fn register_loaded_objects(registry: &Registry) -> usize {
    let mut known = Vec::new();
    registry.for_each_module(|m| known.push(m.eh_frame().as_ptr() as usize));
    let mut added = 0;
    for o in loaded_objects() {
        if known.contains(&(o.eh_frame.as_ptr() as usize)) {
            continue;
        }
        let desc = ModuleDesc {
            name: &o.name,
            kind: ModuleKind::Static,
            // FDEs of `.init`/`.plt` may lie outside the first executable segment:
            // bound the module by its FDEs, which stay inside the executable segments.
            text: None,
            eh_frame: o.eh_frame,
            eh_frame_hdr: Some(o.eh_frame_hdr),
            lsda: None,
        };
        // SAFETY: the sections stay mapped while the object is loaded; objects are not
        // unloaded behind the registry's back by the programs this serves.
        if unsafe { registry.register(&desc) }.is_ok() {
            added += 1;
        }
    }
    added
}

static LOADED: spin::Once<()> = spin::Once::new();

/// Makes sure the running program's own objects are in the [`crate::global`] registry.
pub fn ensure_loaded_objects() {
    LOADED.call_once(|| {
        register_loaded_objects(crate::global());
    });
}

/// The calling thread's stack, and its signal stack when one is set.
pub fn current_stack_bounds() -> [Range<u64>; 2] {
    [thread_stack(), signal_stack()]
}

/// The calling thread's stack (queried once per thread).
fn thread_stack() -> Range<u64> {
    std::thread_local! {
        static STACK: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    }
    let stack = STACK.with(|s| {
        if let Some(b) = s.get() {
            return b;
        }
        // SAFETY: plain libc queries about the calling thread, into local storage.
        let b = unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            let mut addr: *mut libc::c_void = std::ptr::null_mut();
            let mut size = 0usize;
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
                libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
                libc::pthread_attr_destroy(&mut attr);
            }
            (addr as u64, addr as u64 + size as u64)
        };
        s.set(Some(b));
        b
    });
    stack.0..stack.1
}

/// The calling thread's signal stack, or `0..0` (a `sigaltstack` system call).
fn signal_stack() -> Range<u64> {
    // SAFETY: querying the current signal stack into a local.
    unsafe {
        let mut ss: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut ss) == 0 && ss.ss_flags & libc::SS_DISABLE == 0
        {
            ss.ss_sp as u64..ss.ss_sp as u64 + ss.ss_size as u64
        } else {
            0..0
        }
    }
}

/// The stacks a walk starting at `sp` may read. A walk that starts on the thread's own
/// stack only goes up that stack (callers of code on the signal stack are on the stack
/// it interrupted, not the other way round), so it skips the `sigaltstack` system call,
/// which costs as much as walking a dozen cached frames.
fn walk_bounds(sp: u64) -> [Range<u64>; 2] {
    let stack = thread_stack();
    if stack.contains(&sp) {
        [stack, 0..0]
    } else {
        [stack, signal_stack()]
    }
}

std::thread_local! {
    static CACHE: std::cell::RefCell<Option<std::boxed::Box<UnwindCache>>> = const { std::cell::RefCell::new(None) };
}

/// Captures the calling thread's stack PCs into `buf`, starting with the return address
/// into the caller of this function. Native frames need no registration (the loaded
/// objects are found on first use); JIT frames need their module registered in the
/// [`crate::global`] registry. Reads stay inside the thread's stack and signal stack, so
/// a corrupt stack ends the walk instead of faulting. Uses a per-thread rule cache (when
/// it is not already in use by an interrupted walk on this thread). Returns how many PCs
/// were written.
#[inline(never)]
pub fn backtrace(buf: &mut [usize]) -> usize {
    let regs = crate::arch::x86_64::Regs::capture();
    ensure_loaded_objects();
    let bounds = walk_bounds(regs.sp());
    let mem = LiveMemory::with_bounds(&bounds);
    let unwinder = Unwinder::<Native>::new(crate::global());
    let mut walk = |cache: Option<&mut UnwindCache>| {
        let mut it = unwinder.frames(regs, false, &mem, cache);
        // The first frame is this function itself.
        let _ = it.next();
        it.collect_pcs(buf)
    };
    let cached = CACHE.try_with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        let cache = c.get_or_insert_with(|| std::boxed::Box::new(UnwindCache::new()));
        Some(walk(Some(cache)))
    });
    match cached {
        Ok(Some(n)) => n,
        _ => walk(None),
    }
}
