//! `Registry::register_relocated`: copies of the running program's `.eh_frame` sections,
//! registered at the addresses the originals have, in a private registry, unwind a copy
//! of this thread's stack to exactly the PCs the live walk finds: what `clew decode`
//! does with a dump on a host. The same copies registered where they lie (plain
//! `register`) describe other addresses and cannot walk the stack.

use clew_unwinder::arch::x86_64::{Regs, X86_64};
use clew_unwinder::{
    LiveMemory, ModuleDesc, ModuleKind, Registry, SliceMemory, SymbolMap, Unwinder,
};

/// The private registry and the copies it reads (dropped after it).
struct Copies {
    registry: Registry,
    _bytes: Vec<Box<[u8]>>,
}

fn copies(relocated: bool) -> Copies {
    let mut c = Copies {
        registry: Registry::new(),
        _bytes: Vec::new(),
    };
    for o in clew_unwinder::os::linux::loaded_objects() {
        let copy: Box<[u8]> = o.eh_frame.into();
        // SAFETY: the copy lives in `_bytes`, dropped after the registry.
        let eh: &'static [u8] = unsafe { std::slice::from_raw_parts(copy.as_ptr(), copy.len()) };
        c._bytes.push(copy);
        let desc = ModuleDesc {
            name: &o.name,
            kind: ModuleKind::Static,
            text: None,
            eh_frame: eh,
            eh_frame_hdr: None,
            lsda: None,
        };
        // SAFETY: as above.
        let _ = unsafe {
            if relocated {
                c.registry.register_relocated(
                    &desc,
                    o.eh_frame.as_ptr() as u64,
                    SymbolMap::default(),
                )
            } else {
                c.registry.register(&desc)
            }
        };
    }
    c
}

fn walk<M: clew_unwinder::Memory>(registry: &Registry, regs: Regs, mem: &M) -> Vec<usize> {
    let mut pcs = vec![0usize; 256];
    let n = Unwinder::<X86_64>::new(registry).trace_into(regs, false, mem, None, &mut pcs);
    pcs.truncate(n);
    pcs
}

/// Captures the registers and walks the live stack here; the copy is taken below.
#[inline(never)]
fn capture_and_compare() {
    clew_unwinder::os::linux::ensure_loaded_objects();
    let regs = Regs::capture();
    let bounds = clew_unwinder::os::linux::current_stack_bounds();
    let live = walk(
        clew_unwinder::global(),
        regs,
        &LiveMemory::with_bounds(&bounds),
    );
    compare(&regs, &live, &bounds[0]);
}

#[inline(never)]
fn compare(regs: &Regs, live: &[usize], stack: &std::ops::Range<u64>) {
    let sp = regs.gpr[7];
    assert!(stack.contains(&sp));
    let len = ((stack.end - sp) as usize).min(1 << 20);
    // SAFETY: `sp..sp + len` is this thread's live stack above the capturing frame.
    let snapshot = unsafe { std::slice::from_raw_parts(sp as *const u8, len) }.to_vec();
    let mem = SliceMemory {
        base: sp,
        bytes: &snapshot,
    };
    assert!(live.len() > 3, "{live:x?}");

    let relocated = copies(true);
    assert_eq!(walk(&relocated.registry, *regs, &mem), live);

    let misplaced = copies(false);
    assert_ne!(walk(&misplaced.registry, *regs, &mem), live);
}

#[test]
fn relocated_copies_unwind_a_stack_snapshot_like_the_live_walk() {
    capture_and_compare();
}
