//! The registry under concurrent registration and deregistration, and its other entry
//! points.
//!
//! The stress test is the proof of the epoch (RCU) scheme: writer threads keep
//! registering and deregistering modules over a shared pool of text ranges (modules
//! sharing a 4 KiB page, spanning many pages, 2 MiB and 1 GiB boundaries and a 512 GiB
//! region boundary, and overlapping pairs that must exclude each other), each with its
//! own heap `.eh_frame` that encodes a unique signature. As soon as `deregister`
//! returns, the writer overwrites the bytes with a poisoned section and frees them.
//! Reader threads keep looking PCs up and walking synthetic stacks through the modules
//! (with and without a rule cache) and check that what they find is exactly the
//! module whose text holds the PC, with its own signature: never a stale rule, never
//! poisoned or freed bytes. The test binary's allocator poisons every freed block, so
//! that a module, table or page list freed before its grace period ends is garbage to
//! a reader, not stale-but-intact memory. Writers wait for some reads every few
//! operations, so reads and writes interleave whatever the scheduler does; the run is
//! bounded by the writers' operation count.
//!
//! Also covered: `deregister_eh_frame`, `deregister_text`, `len`, `for_each_module`,
//! `compat::register_frame` (text bounds derived from the FDEs), the Theseus shim on
//! the global registry, a `ModuleProvider` with and without `.eh_frame_hdr`, the
//! frame-pointer fallback, and FDE-index lookups against a linear search.

mod support;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::{
    Error, Frame, FrameKind, ModuleDesc, ModuleHandle, ModuleKind, ModuleProvider, Native,
    ProvidedModule, Registry, UnwindCache, Unwinder, compat, global,
};
use gimli::UnwindSection;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use support::*;

/// Poisons every block before it is freed: a reader touching memory the registry freed
/// too early (a module, an address-map table or page list) reads garbage pointers and
/// fails, instead of stale but intact contents.
struct PoisoningAllocator;

// SAFETY: forwards to the system allocator; only writes to blocks being freed.
unsafe impl std::alloc::GlobalAlloc for PoisoningAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the block is ours until it is freed.
        unsafe {
            ptr.write_bytes(0xa5, layout.size());
            std::alloc::System.dealloc(ptr, layout)
        }
    }
}

#[global_allocator]
static ALLOCATOR: PoisoningAllocator = PoisoningAllocator;

const MB2: usize = 2 << 20;
const GB: usize = 1 << 30;
const REGION: usize = 1 << 39;
/// The pool's base: fake addresses (the registry never reads text), region aligned.
const P: usize = 0x4000_0000_0000;

/// The text ranges modules come and go at.
fn pool() -> Vec<Range<usize>> {
    vec![
        // Four modules sharing one page.
        P..P + 0x400,
        P + 0x400..P + 0x800,
        P + 0x800..P + 0xc00,
        P + 0xc00..P + 0x1000,
        // Many pages.
        P + 0x1000..P + 0x9000,
        // A page shared by the end of one and the start of the next.
        P + 0x9000..P + 0x9a00,
        P + 0x9a00..P + 0xc000,
        // Across a 2 MiB boundary; across several 2 MiB slots.
        P + MB2 - 0x3000..P + MB2 + 0x5000,
        P + 3 * MB2 + 0x800..P + 6 * MB2 + 0x100,
        // Across a 1 GiB boundary, and a 512 GiB region boundary.
        P + GB - 0x2000..P + GB + 0x2000,
        P + REGION - 0x1000..P + REGION + 0x1000,
        // Overlapping pairs: at most one of each is registered at a time.
        P + 0x20000..P + 0x22000,
        P + 0x21000..P + 0x23000,
        P + 0x30100..P + 0x30300,
        P + 0x30200..P + 0x30500,
    ]
}

/// The CFA offset of a module's compact function: part of its signature.
fn cfa_off(sig: u32) -> i32 {
    16 + 8 * (sig % 12) as i32
}

/// The sections of a module with signature `sig` over `text`: the first half of the
/// text is a compact function (CFA = rsp + `cfa_off(sig)`), the second half one that
/// needs the full evaluation (CFA = rsp + 16, rbx = `sig` by a val_expression).
fn module_bytes(text: &Range<usize>, sig: u32) -> Vec<u8> {
    let half = ((text.end - text.start) / 2) as u32;
    let mut konst = vec![0x0c];
    konst.extend(sig.to_le_bytes());
    build_eh_frame(
        &[CieSpec::standard(ABSPTR)],
        &[
            fde(0, half, vec![(0, I::CfaOffset(cfa_off(sig)))]),
            fde(
                half as u64,
                half,
                vec![
                    (0, I::CfaOffset(16)),
                    (0, I::ValExpression(RBX, expr(&konst))),
                ],
            ),
        ],
        text.start as u64,
        0,
    )
}

const POISON: u32 = u32::MAX;

/// A registered module owned by a writer.
struct Live {
    handle: ModuleHandle,
    bytes: *mut [u8],
}

// SAFETY: the pointer is an owned box, moved between threads only under the slot's lock.
unsafe impl Send for Live {}

struct Shared {
    reg: Registry,
    slots: Vec<Range<usize>>,
    live: Vec<Mutex<Option<Live>>>,
    next_sig: AtomicU32,
    done: AtomicBool,
    reads: AtomicUsize,
    /// Set when a reader panics, so that writers stop waiting for its reads.
    reader_failed: AtomicBool,
    registered: AtomicUsize,
    overlaps: AtomicUsize,
    checked: AtomicUsize,
    walked: AtomicUsize,
}

impl Shared {
    /// Registers or deregisters the module at slot `i`.
    fn toggle(&self, i: usize, rng: &mut SmallRng) {
        let Ok(mut live) = self.live[i].try_lock() else {
            return;
        };
        let text = &self.slots[i];
        match live.take() {
            Some(l) => {
                let start = l.bytes.cast::<u8>().cast_const();
                match rng.random_range(0..3) {
                    0 => self.reg.deregister(l.handle).unwrap(),
                    1 => self.reg.deregister_eh_frame(start).unwrap(),
                    _ => self.reg.deregister_text(text.start).unwrap(),
                }
                // No reader uses the bytes any more: poison them, then free them.
                let poison = module_bytes(text, POISON);
                // SAFETY: owned box, no longer registered.
                unsafe {
                    assert_eq!(l.bytes.len(), poison.len());
                    (&mut *l.bytes).copy_from_slice(&poison);
                    drop(Box::from_raw(l.bytes));
                }
            }
            None => {
                let sig = self.next_sig.fetch_add(1, Ordering::Relaxed);
                let bytes = Box::into_raw(module_bytes(text, sig).into_boxed_slice());
                let name = format!("{i}:{sig}");
                let desc = ModuleDesc {
                    name: &name,
                    kind: ModuleKind::Jit,
                    text: Some(text.clone()),
                    // SAFETY: freed only after deregistration (or a failed registration).
                    eh_frame: unsafe { &*bytes },
                    eh_frame_hdr: None,
                    lsda: None,
                };
                // SAFETY: as above.
                match unsafe { self.reg.register(&desc) } {
                    Ok(handle) => {
                        *live = Some(Live { handle, bytes });
                        self.registered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        assert_eq!(e, Error::Overlap, "slot {i}");
                        assert!(
                            self.slots
                                .iter()
                                .enumerate()
                                .any(|(j, s)| j != i && s.start < text.end && text.start < s.end),
                            "slot {i} overlaps nothing"
                        );
                        self.overlaps.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: never registered.
                        drop(unsafe { Box::from_raw(bytes) });
                    }
                }
            }
        }
    }

    /// Looks up a PC of slot `i` (and one of slot `j`) and checks everything about
    /// what is found; walks a stack through them.
    fn read(
        &self,
        i: usize,
        j: usize,
        rng: &mut SmallRng,
        ctx: &mut gimli::UnwindContext<usize>,
        cache: &mut UnwindCache,
    ) {
        let pc_in = |s: &Range<usize>, rng: &mut SmallRng| rng.random_range(s.clone());
        let pc = pc_in(&self.slots[i], rng);
        let g = self.reg.pin();
        let Some(m) = g.find_module(pc) else {
            return;
        };
        assert!(m.find_fde(pc).is_some(), "{}: no FDE for {pc:#x}", m.name());
        let sig = self.verify(m, pc, ctx);
        self.checked.fetch_add(1, Ordering::Relaxed);
        let half = m.text().start + (m.text().end - m.text().start) / 2;
        let compact = pc < half;

        // Frame 0 at `pc` (exact), and sometimes a caller in slot `j`.
        let mut stack = Stack {
            base: 0x7000_0000_0000,
            bytes: vec![0; 32 * 8],
        };
        let sp = stack.addr(2);
        let cfa0 = sp + if compact { cfa_off(sig) as u64 } else { 16 };
        let pc1 = pc_in(&self.slots[j], rng) as u64;
        let callee = g
            .find_fde(pc1 as usize - 1)
            .map(|(m1, _)| (m1.id(), self.verify(m1, pc1 as usize - 1, ctx), m1.text()));
        if callee.is_some() {
            stack.set(cfa0 - 8, pc1);
        }
        let u = Unwinder::<Native>::new(&self.reg);
        let cache = rng.random_bool(0.5).then_some(cache);
        let w = walk_once(&u, regs(pc as u64, sp, &[]), true, &stack.mem(), cache, 4);
        let f0 = w.frames[0].unwrap();
        match f0.module {
            // Unlinked since our lookup (its deregistration waits for us).
            None => {
                assert_eq!(f0.kind, FrameKind::Unknown);
                return;
            }
            Some(id) => assert_eq!(id, m.id(), "frame 0 from another module: {w:#?}"),
        }
        assert_eq!(f0.cfa, Some(cfa0), "sig {sig}: {w:#?}");
        if !compact {
            assert_eq!(w.regs[1].gpr[3], u64::from(sig));
        }
        let Some((id1, sig1, text1)) = callee else {
            assert_eq!(w.frames.len(), 1);
            return;
        };
        let f1 = w.frames[1].unwrap();
        match f1.module {
            None => assert_eq!(f1.kind, FrameKind::Unknown),
            Some(id) => {
                assert_eq!(id, id1, "frame 1 from another module: {w:#?}");
                let half1 = (text1.start + (text1.end - text1.start) / 2) as u64;
                if pc1 - 1 < half1 {
                    assert_eq!(f1.cfa, Some(cfa0 + cfa_off(sig1) as u64));
                } else {
                    assert_eq!(f1.cfa, Some(cfa0 + 16));
                    assert_eq!(w.regs[2].gpr[3], u64::from(sig1));
                }
                self.walked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Checks a module found for `pc`: its text is the pool slot its name says and
    /// holds `pc`, and both of its FDEs carry its signature. Returns the signature.
    fn verify(
        &self,
        m: &clew_unwinder::Module,
        pc: usize,
        ctx: &mut gimli::UnwindContext<usize>,
    ) -> u32 {
        let (slot, sig) = m.name().split_once(':').expect("name");
        let (slot, sig): (usize, u32) = (slot.parse().unwrap(), sig.parse().unwrap());
        assert_eq!(m.text(), self.slots[slot]);
        assert!(m.text().contains(&pc));
        assert_ne!(sig, POISON);
        let index = m.fde_index().fdes();
        assert_eq!(index.len(), 2);
        let section = m.eh_frame_section();
        for (k, e) in index.iter().enumerate() {
            let fde = m
                .parse_fde(e)
                .unwrap_or_else(|err| panic!("module {sig}: {err}"));
            let start = m.text().start as u64 + u64::from(e.start);
            assert_eq!(
                (fde.initial_address(), fde.len()),
                (start, u64::from(e.len))
            );
            let row = fde
                .unwind_info_for_address(section, m.bases(), ctx, start)
                .unwrap();
            let gimli::CfaRule::RegisterAndOffset { register, offset } = *row.cfa() else {
                panic!("module {sig}: CFA rule");
            };
            assert_eq!(register, RSP);
            if k == 0 {
                assert_eq!(offset, i64::from(cfa_off(sig)), "module {sig}");
            } else {
                assert_eq!(offset, 16);
                let Some(gimli::RegisterRule::ValExpression(e)) = row.register(RBX) else {
                    panic!("module {sig}: rbx rule");
                };
                let bytes = e.get(section).unwrap().0.slice();
                assert_eq!(bytes[1..], sig.to_le_bytes(), "module {sig}");
            }
        }
        sig
    }
}

/// Sets its flag when dropped by a panic.
struct FlagOnPanic<'a>(&'a AtomicBool);

impl Drop for FlagOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

#[test]
fn concurrent_register_deregister_lookup_walk() {
    const WRITERS: usize = 2;
    const READERS: usize = 2;
    const WRITES: usize = 20_000;
    /// Writers wait for this many reads every `HANDSHAKE` toggles, so that reads and
    /// writes interleave whatever the scheduler does.
    const READS_PER_HANDSHAKE: usize = 64;
    const HANDSHAKE: usize = 8;
    let slots = pool();
    let shared = Shared {
        reg: Registry::new(),
        live: slots.iter().map(|_| Mutex::new(None)).collect(),
        slots,
        next_sig: AtomicU32::new(0),
        done: AtomicBool::new(false),
        reads: AtomicUsize::new(0),
        reader_failed: AtomicBool::new(false),
        registered: AtomicUsize::new(0),
        overlaps: AtomicUsize::new(0),
        checked: AtomicUsize::new(0),
        walked: AtomicUsize::new(0),
    };
    let start = Barrier::new(WRITERS + READERS);
    std::thread::scope(|s| {
        let mut writers = vec![];
        for t in 0..WRITERS {
            let (shared, start) = (&shared, &start);
            writers.push(s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t as u64);
                start.wait();
                for k in 0..WRITES {
                    if k % HANDSHAKE == 0 {
                        let r0 = shared.reads.load(Ordering::Relaxed);
                        while shared.reads.load(Ordering::Relaxed) < r0 + READS_PER_HANDSHAKE
                            && !shared.reader_failed.load(Ordering::Relaxed)
                        {
                            std::thread::yield_now();
                        }
                    }
                    shared.toggle(rng.random_range(0..shared.slots.len()), &mut rng);
                }
            }));
        }
        for t in 0..READERS {
            let (shared, start) = (&shared, &start);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(100 + t as u64);
                let mut ctx = Box::new(gimli::UnwindContext::new());
                let mut cache = Box::new(UnwindCache::new());
                let _flag = FlagOnPanic(&shared.reader_failed);
                start.wait();
                while !shared.done.load(Ordering::Relaxed) {
                    let len = shared.slots.len();
                    shared.read(
                        rng.random_range(0..len),
                        rng.random_range(0..len),
                        &mut rng,
                        &mut ctx,
                        &mut cache,
                    );
                    shared.reads.fetch_add(1, Ordering::Relaxed);
                    // Give the CPU away here, unpinned, rather than be preempted while
                    // pinned: on oversubscribed cores a writer would wait for us for a
                    // whole time slice.
                    std::thread::yield_now();
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        shared.done.store(true, Ordering::Relaxed);
    });
    // What is left is exactly what the writers hold.
    {
        let g = shared.reg.pin();
        let held: Vec<Option<ModuleHandle>> = shared
            .live
            .iter()
            .map(|l| l.lock().unwrap().as_ref().map(|l| l.handle))
            .collect();
        assert_eq!(shared.reg.len(), held.iter().flatten().count());
        for (i, s) in shared.slots.iter().enumerate() {
            for pc in [s.start, s.start + (s.end - s.start) / 2, s.end - 1] {
                let owner = shared
                    .slots
                    .iter()
                    .zip(&held)
                    .find(|(t, h)| h.is_some() && t.contains(&pc))
                    .and_then(|(_, h)| *h);
                let found = g.find_module(pc).map(|m| ModuleHandle(m.id()));
                assert_eq!(found, owner, "slot {i}, pc {pc:#x}");
            }
        }
    }
    // Clean up what is left, then the registry is empty.
    for (i, l) in shared.live.iter().enumerate() {
        if let Some(l) = l.lock().unwrap().take() {
            shared.reg.deregister(l.handle).unwrap();
            // SAFETY: deregistered.
            drop(unsafe { Box::from_raw(l.bytes) });
            assert!(
                shared
                    .reg
                    .pin()
                    .find_module(shared.slots[i].start)
                    .is_none()
            );
        }
    }
    assert!(shared.reg.is_empty());
    let (r, o, c, w) = (
        shared.registered.load(Ordering::Relaxed),
        shared.overlaps.load(Ordering::Relaxed),
        shared.checked.load(Ordering::Relaxed),
        shared.walked.load(Ordering::Relaxed),
    );
    // The writers' work is fixed; the readers' depends on scheduling (writers wait for
    // some reads every few operations), so only a floor is asserted for it.
    assert!(
        r > 10_000 && o > 100 && c > 1000 && w > 500,
        "registered {r}, overlaps {o}, checked {c}, walked {w}"
    );
}

#[test]
fn registry_bookkeeping() {
    let reg = Registry::new();
    assert!(reg.is_empty());
    let a = leak_module(
        0x400,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[fde(0x100, 0x40, vec![])],
    );
    let b = leak_module(
        0x400,
        &[CieSpec::standard(ABSPTR)],
        &[fde(0x10, 0x40, vec![]), fde(0x80, 0x40, vec![])],
    );
    let c = leak_module(
        0x400,
        &[CieSpec::standard(SDATA8)],
        &[fde(0x0, 0x400, vec![])],
    );
    let ha = a.register(&reg, ModuleKind::Static).unwrap();
    let mut desc = b.desc(ModuleKind::LoadedObject);
    desc.name = "libb.so";
    desc.lsda = Some(0x1000..0x2000);
    // SAFETY: leaked.
    let hb = unsafe { reg.register(&desc) }.unwrap();
    let hc = c.register(&reg, ModuleKind::Jit).unwrap();
    assert_eq!(reg.len(), 3);
    assert!(ha.0 < hb.0 && hb.0 < hc.0);

    let mut seen = vec![];
    reg.for_each_module(|m| {
        seen.push((
            m.id(),
            m.name().to_string(),
            m.kind(),
            m.text(),
            m.fde_index().fdes().len(),
        ))
    });
    assert_eq!(
        seen,
        vec![
            (
                ha.0,
                "synthetic".into(),
                ModuleKind::Static,
                a.text.clone(),
                1
            ),
            (
                hb.0,
                "libb.so".into(),
                ModuleKind::LoadedObject,
                b.text.clone(),
                2
            ),
            (hc.0, "synthetic".into(), ModuleKind::Jit, c.text.clone(), 1),
        ]
    );
    let mut n = 0;
    assert!(reg.try_for_each_module(|_| n += 1));
    assert_eq!(n, 3);
    {
        let g = reg.pin();
        let m = g.find_module(b.text.start + 0x20).unwrap();
        assert_eq!(m.eh_frame().as_ptr(), b.eh_frame.as_ptr());
        assert_eq!(m.lsda(), Some(0x1000..0x2000));
        assert!(m.eh_frame_hdr().is_none());
        assert!(g.find_fde(b.text.start + 0x4f).is_some());
        assert!(g.find_fde(b.text.start + 0x50).is_none(), "between FDEs");
        assert!(g.find_fde(b.text.start + 0x80).is_some());
        assert!(std::ptr::eq(g.registry(), &reg));
    }

    // Deregistration by `.eh_frame` start and by text start.
    let gen0 = reg.generation();
    reg.deregister_eh_frame(b.eh_frame.as_ptr()).unwrap();
    assert!(reg.generation() > gen0);
    assert_eq!(reg.len(), 2);
    assert!(reg.pin().find_module(b.text.start + 0x20).is_none());
    assert_eq!(
        reg.deregister_text(c.text.start + 1),
        Err(Error::NotRegistered)
    );
    reg.deregister_text(c.text.start).unwrap();
    assert_eq!(reg.len(), 1);
    assert_eq!(reg.deregister(hc), Err(Error::NotRegistered));
    reg.deregister(ha).unwrap();
    assert!(reg.is_empty());
    let mut n = 0;
    reg.for_each_module(|_| n += 1);
    assert_eq!(n, 0);
}

#[test]
fn register_frame_derives_the_text_bounds() {
    let m = leak_module(
        0x400,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[
            fde(0x300, 0x80, vec![(0, I::CfaOffset(32))]),
            fde(0x100, 0x40, vec![(0, I::CfaOffset(16))]),
            // Empty FDEs do not count.
            fde(0x3f0, 0, vec![]),
        ],
    );
    let reg = Registry::new();
    // SAFETY: leaked and zero-terminated.
    let h = unsafe { compat::register_frame(&reg, m.eh_frame.as_ptr()) }.unwrap();
    {
        let g = reg.pin();
        let md = g.find_module(m.text.start + 0x100).unwrap();
        assert_eq!(md.id(), h.0);
        assert_eq!(md.text(), m.text.start + 0x100..m.text.start + 0x380);
        assert_eq!(md.name(), "__register_frame");
        assert_eq!(md.kind(), ModuleKind::Jit);
        assert_eq!(md.eh_frame().len(), m.eh_frame.len());
        assert!(g.find_module(m.text.start + 0xff).is_none());
        assert!(g.find_module(m.text.start + 0x380).is_none());
        assert!(
            g.find_module(m.text.start + 0x200).is_some(),
            "inside the derived bounds"
        );
        assert!(
            g.find_fde(m.text.start + 0x200).is_none(),
            "but no FDE there"
        );
    }
    let stack = Stack::new(0x7000_0000_0000, 64);
    let sp = stack.addr(4);
    let w = walk(
        &Unwinder::new(&reg),
        regs(m.at(0x310), sp, &[]),
        true,
        &stack.mem(),
    );
    assert_eq!(w.ok()[0].cfa, Some(sp + 32));
    assert_eq!(w.ok()[0].module, Some(h.0));

    // The same section again, or another over the same code: overlap.
    // SAFETY: as above.
    assert_eq!(
        unsafe { compat::register_frame(&reg, m.eh_frame.as_ptr()) },
        Err(Error::Overlap)
    );
    let other = leak_module_at(
        m.text.clone(),
        &[CieSpec::standard(UDATA8)],
        &[fde(0x370, 0x20, vec![])],
    );
    // SAFETY: leaked and zero-terminated.
    assert_eq!(
        unsafe { compat::register_frame(&reg, other.eh_frame.as_ptr()) },
        Err(Error::Overlap)
    );
    assert_eq!(reg.len(), 1);

    compat::deregister_frame(&reg, m.eh_frame.as_ptr()).unwrap();
    assert_eq!(
        compat::deregister_frame(&reg, m.eh_frame.as_ptr()),
        Err(Error::NotRegistered)
    );
    assert!(reg.is_empty());
}

#[test]
fn theseus_shim_on_the_global_registry() {
    use compat::theseus::{deregister_unwind_info, register_unwind_info};
    let m = leak_module(
        0x400,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[fde(0x100, 0x40, vec![(0, I::CfaOffset(24))])],
    );
    let (text, len) = (m.text.start, m.text.end - m.text.start);
    let (eh, eh_len) = (m.eh_frame.as_ptr() as usize, m.eh_frame.len());
    // SAFETY (all calls): leaked sections.
    unsafe { register_unwind_info(text, len, eh, eh_len) }.unwrap();
    {
        let g = global().pin();
        let (md, _) = g.find_fde(text + 0x110).unwrap();
        assert_eq!(md.name(), "theseus unwind info");
        assert_eq!(md.kind(), ModuleKind::Jit);
        assert_eq!(md.text(), m.text);
    }
    let stack = Stack::new(0x7000_0000_0000, 64);
    let sp = stack.addr(4);
    let w = walk(
        &Unwinder::new(global()),
        regs(m.at(0x110), sp, &[]),
        true,
        &stack.mem(),
    );
    assert_eq!(w.ok()[0].cfa, Some(sp + 24));

    assert_eq!(
        unsafe { register_unwind_info(text + 0x80, 0x100, eh, eh_len) },
        Err("text section overlaps registered unwind info")
    );
    deregister_unwind_info(text).unwrap();
    assert_eq!(
        deregister_unwind_info(text),
        Err("no unwind info registered for this text section")
    );
    assert!(global().pin().find_module(text + 0x110).is_none());

    assert_eq!(
        unsafe { register_unwind_info(text + 0x120, 0x100, eh, eh_len) },
        Err("an FDE lies outside the text section")
    );
    assert_eq!(
        unsafe { register_unwind_info(text, 0, eh, eh_len) },
        Err("empty text section")
    );
    let garbage: &'static [u8] = Box::leak(vec![0xffu8; 64].into_boxed_slice());
    assert_eq!(
        unsafe { register_unwind_info(text, len, garbage.as_ptr() as usize, garbage.len()) },
        Err("malformed .eh_frame")
    );
    assert!(global().pin().find_module(text + 0x110).is_none());
}

/// A provided module: text, `.eh_frame`, and a hand-made `.eh_frame_hdr`, in one leaked
/// allocation.
fn leak_provided(cies: &[CieSpec], fdes: &[FdeSpec]) -> (Synth, &'static [u8]) {
    const TEXT_LEN: usize = 0x400;
    let probe = build_eh_frame(cies, fdes, 0x1000_0000, 0x2000_0000);
    let n = fdes.iter().filter(|f| f.len > 0).count();
    let hdr_len = 12 + 8 * n;
    let eh_off = TEXT_LEN;
    let hdr_off = eh_off + ((probe.len() + 15) & !15);
    let buf: &'static mut [u8] = Box::leak(vec![0u8; hdr_off + hdr_len].into_boxed_slice());
    let text = buf.as_ptr() as u64;
    let (eh_addr, hdr_addr) = (text + eh_off as u64, text + hdr_off as u64);
    let bytes = build_eh_frame(cies, fdes, text, eh_addr);
    buf[eh_off..eh_off + bytes.len()].copy_from_slice(&bytes);

    // The FDEs' addresses and offsets, read back with gimli.
    let section = gimli::EhFrame::new(&bytes, gimli::LittleEndian);
    let bases = gimli::BaseAddresses::default().set_eh_frame(eh_addr);
    let mut table = vec![];
    let mut entries = section.entries(&bases);
    while let Some(e) = entries.next().unwrap() {
        if let gimli::CieOrFde::Fde(p) = e {
            let f = p.parse(gimli::EhFrame::cie_from_offset).unwrap();
            if f.len() > 0 {
                table.push((f.initial_address(), eh_addr + f.offset() as u64));
            }
        }
    }
    table.sort();
    let mut hdr = vec![1, 0x1b, 0x03, 0x3b];
    hdr.extend(((eh_addr as i64 - (hdr_addr as i64 + 4)) as i32).to_le_bytes());
    hdr.extend((table.len() as u32).to_le_bytes());
    for (pc, fde) in table {
        hdr.extend((pc.wrapping_sub(hdr_addr) as i64 as i32).to_le_bytes());
        hdr.extend((fde.wrapping_sub(hdr_addr) as i64 as i32).to_le_bytes());
    }
    assert_eq!(hdr.len(), hdr_len);
    buf[hdr_off..].copy_from_slice(&hdr);
    let buf: &'static [u8] = buf;
    (
        Synth {
            text: text as usize..text as usize + TEXT_LEN,
            eh_frame: &buf[eh_off..eh_off + bytes.len()],
        },
        &buf[hdr_off..],
    )
}

struct Provider {
    modules: Vec<ProvidedModule>,
}

impl ModuleProvider for Provider {
    fn find_module(&self, pc: usize) -> Option<ProvidedModule> {
        self.modules.iter().find(|m| m.text.contains(&pc)).cloned()
    }
}

fn without_module(frames: &[Result<Frame, Error>]) -> Vec<(u64, u64, Option<u64>, bool)> {
    frames
        .iter()
        .map(|f| {
            let f = f.unwrap();
            (f.pc, f.sp, f.cfa, f.exact_pc)
        })
        .collect()
}

#[test]
fn module_provider_with_and_without_eh_frame_hdr() {
    for (_, enc) in ENCODINGS {
        let fdes = [
            fde(
                0x100,
                0x40,
                vec![(0, I::CfaOffset(32)), (0, I::Offset(RBX, -16))],
            ),
            fde(
                0x200,
                0x40,
                vec![(0, I::CfaOffset(16)), (0, I::ValOffset(R12, -16))],
            ),
            fde(0x300, 0x40, vec![(0, I::Undefined(RA))]),
            fde(0x380, 0, vec![]),
        ];
        let (m, hdr) = leak_provided(&[CieSpec::standard(enc)], &fdes);
        let mut stack = Stack::new(0x7000_0000_0000, 64);
        let sp = stack.addr(4);
        stack.set(sp + 24, m.at(0x211));
        stack.set(sp + 32 + 8, m.at(0x321));
        let r0 = regs(m.at(0x110), sp, &[]);

        // The reference: the same module registered.
        let reference = Registry::new();
        let h = m.register(&reference, ModuleKind::Static).unwrap();
        let expected = walk(&Unwinder::new(&reference), r0, true, &stack.mem());
        assert_eq!(expected.frames.len(), 3, "{expected:#?}");
        assert!(
            expected
                .frames
                .iter()
                .all(|f| f.unwrap().module == Some(h.0))
        );

        let empty = Registry::new();
        for with_hdr in [Some(hdr), None] {
            let p = Provider {
                modules: vec![ProvidedModule {
                    text: m.text.clone(),
                    eh_frame: m.eh_frame,
                    eh_frame_hdr: with_hdr,
                }],
            };
            let u = Unwinder::<Native>::new(&empty).with_provider(&p);
            let w = walk(&u, r0, true, &stack.mem());
            assert_eq!(without_module(&w.frames), without_module(&expected.frames));
            assert_eq!(w.regs, expected.regs);
            for f in w.ok() {
                assert_eq!((f.kind, f.module), (FrameKind::Provided, None));
            }
            // Between FDEs: the provider answers, the module has nothing.
            let gap = regs(m.at(0x150), sp, &[]);
            let w = walk(&u, gap, true, &stack.mem());
            assert_eq!(w.ok()[0].kind, FrameKind::Unknown);
            assert_eq!(w.frames.len(), 1);
        }
        // Without a provider: nothing known.
        let w = walk(&Unwinder::new(&empty), r0, true, &stack.mem());
        assert_eq!(w.frames.len(), 1);
        assert_eq!(w.ok()[0].kind, FrameKind::Unknown);

        // The registry comes first.
        let other = leak_module_at(
            m.text.clone(),
            &[CieSpec::standard(ABSPTR)],
            &[fde(0x100, 0x40, vec![(0, I::CfaOffset(64))])],
        );
        let p = Provider {
            modules: vec![ProvidedModule {
                text: m.text.clone(),
                eh_frame: other.eh_frame,
                eh_frame_hdr: None,
            }],
        };
        let u = Unwinder::<Native>::new(&reference).with_provider(&p);
        assert_eq!(walk(&u, r0, true, &stack.mem()), expected);
    }
}

fn fp_frame(pc: u64, sp: u64, cfa: Option<u64>, kind: FrameKind) -> Frame {
    Frame {
        pc,
        sp,
        cfa,
        module: None,
        kind,
        exact_pc: false,
    }
}

#[test]
fn frame_pointer_fallback() {
    let reg = Registry::new();
    let mut s = Stack::new(0x7000_0000_0000, 128);
    let (a, b, c) = (s.addr(10), s.addr(30), s.addr(60));
    let (pc0, pc1, pc2, pc3) = (0x1000, 0x2000, 0x3000, 0x4000);
    s.set(a, b);
    s.set(a + 8, pc1);
    s.set(b, c);
    s.set(b + 8, pc2);
    s.set(c, 0);
    s.set(c + 8, pc3);
    let r0 = regs(pc0, s.addr(2), &[(RBP, a)]);
    let fp = FrameKind::FramePointer;
    let u = Unwinder::<Native>::new(&reg).with_frame_pointer_fallback(true);
    let w = walk(&u, r0, false, &s.mem());
    assert_eq!(
        w.frames,
        vec![
            Ok(fp_frame(pc0, s.addr(2), Some(a + 16), fp)),
            Ok(fp_frame(pc1, a + 16, Some(b + 16), fp)),
            Ok(fp_frame(pc2, b + 16, Some(c + 16), fp)),
            // rbp is 0: the end of the chain.
            Ok(fp_frame(pc3, c + 16, None, FrameKind::Unknown)),
        ]
    );
    let mut end: Regs = r0;
    end.gpr[6] = 0;
    end.gpr[7] = c + 16;
    end.gpr[16] = pc3;
    assert_eq!(w.regs[3], end);
    // Off by default.
    let w = walk(&Unwinder::new(&reg), r0, false, &s.mem());
    assert_eq!(
        w.frames,
        vec![Ok(fp_frame(pc0, s.addr(2), None, FrameKind::Unknown))]
    );

    // CFI and frame-pointer frames mixed: a JIT function with CFI called from code
    // without, called from a JIT function again.
    let m = leak_module(
        0x400,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[
            fde(0x100, 0x40, vec![(0, I::CfaOffset(16))]),
            fde(0x200, 0x40, vec![(0, I::Undefined(RA))]),
        ],
    );
    let h = m.register(&reg, ModuleKind::Jit).unwrap();
    let sp = s.addr(2);
    s.set(sp + 8, pc1);
    s.set(a + 8, m.at(0x211));
    let r0 = regs(m.at(0x110), sp, &[(RBP, a)]);
    let w = walk(&u, r0, true, &s.mem());
    let jit = FrameKind::Module(ModuleKind::Jit);
    let with = |f: Frame, exact: bool| Frame {
        module: Some(h.0),
        exact_pc: exact,
        ..f
    };
    assert_eq!(
        w.frames,
        vec![
            Ok(with(fp_frame(m.at(0x110), sp, Some(sp + 16), jit), true)),
            Ok(fp_frame(pc1, sp + 16, Some(a + 16), fp)),
            Ok(with(
                fp_frame(m.at(0x211), a + 16, Some(a + 24), jit),
                false
            )),
        ]
    );
}

/// The FDE index (binary search, paged for big modules) finds exactly the FDE a linear
/// search finds, for every PC of modules of 1 to 3000 FDEs with random sizes and gaps.
#[test]
fn fde_index_lookup_matches_a_linear_search() {
    for seed in 0..40u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = [1, 2, 3, 63, 64, 65, 200, 1000, 3000][seed as usize % 9];
        let mut fdes = vec![];
        let mut at = rng.random_range(0..64u64);
        for _ in 0..n {
            let len = if rng.random_bool(0.05) {
                0
            } else {
                rng.random_range(1..200u32)
            };
            fdes.push(fde(at, len, vec![]));
            at += u64::from(len) + [0, 0, 1, rng.random_range(0..5000)][rng.random_range(0..4)];
        }
        let text_len = at as usize + rng.random_range(1..100);
        // Shuffled: the index sorts.
        for i in (1..fdes.len()).rev() {
            fdes.swap(i, rng.random_range(0..=i));
        }
        let base = 0x5000_0000_0000 + seed as usize * 0x100_0000;
        let m = leak_module_at(base..base + text_len, &[CieSpec::standard(UDATA8)], &fdes);
        let reg = Registry::new();
        let h = m.register(&reg, ModuleKind::Jit).unwrap();
        let g = reg.pin();
        let expected = |pc: usize| {
            let off = (pc - base) as u64;
            fdes.iter()
                .find(|f| f.start <= off && off < f.start + u64::from(f.len))
                .map(|f| f.start as u32)
        };
        let mut pcs: Vec<usize> = fdes
            .iter()
            .flat_map(|f| {
                let s = base + f.start as usize;
                [
                    s.wrapping_sub(1),
                    s,
                    s + f.len as usize / 2,
                    s + f.len as usize,
                    s + (f.len as usize).saturating_sub(1),
                ]
            })
            .collect();
        pcs.extend((0..2000).map(|_| base + rng.random_range(0..text_len)));
        pcs.extend([base, base + text_len - 1, base + text_len, base - 1]);
        for pc in pcs {
            let found = g.find_fde(pc).map(|(md, e)| {
                assert_eq!(md.id(), h.0);
                assert!(e.len > 0);
                e.start
            });
            let want = if m.text.contains(&pc) {
                expected(pc)
            } else {
                None
            };
            assert_eq!(
                found,
                want,
                "seed {seed}, {n} FDEs, pc offset {:#x}",
                pc.wrapping_sub(base)
            );
        }
    }
}

/// The address map against a linear model, one writer, through every page shape: a
/// module alone in its page (the slot points at it; PCs of the page outside it miss), a
/// page shared by several (a list), lists shrinking back to one module and to nothing,
/// modules over whole pages and across pages.
#[test]
fn page_shapes_match_a_linear_model() {
    const BASE: usize = 0x6000_0000_0000;
    const SPAN: usize = 6 * 0x1000;
    for seed in 0..12u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let reg = Registry::new();
        // (text, handle) of the registered modules.
        let mut live: Vec<(Range<usize>, clew_unwinder::ModuleHandle)> = vec![];
        for step in 0..300 {
            if !live.is_empty() && rng.random_bool(0.4) {
                let (_, h) = live.swap_remove(rng.random_range(0..live.len()));
                reg.deregister(h).unwrap();
            } else {
                let start = BASE + rng.random_range(0..SPAN / 16) * 16;
                let len = match rng.random_range(0..4) {
                    0 => rng.random_range(1..8) * 16,
                    1 => rng.random_range(8..64) * 16,
                    2 => 0x1000,
                    _ => rng.random_range(0x1000..0x3000),
                };
                let text = start..(start + len).min(BASE + SPAN);
                let n_fdes = rng.random_range(1..4usize);
                let fde_len = (text.len() / n_fdes) as u32;
                let fdes: Vec<FdeSpec> = (0..n_fdes)
                    .map(|i| fde(i as u64 * u64::from(fde_len), fde_len, vec![]))
                    .collect();
                let m = leak_module_at(text.clone(), &[CieSpec::standard(UDATA8)], &fdes);
                let overlaps = live
                    .iter()
                    .any(|(t, _)| t.start < text.end && text.start < t.end);
                match m.register(&reg, ModuleKind::Jit) {
                    Ok(h) => {
                        assert!(!overlaps, "seed {seed} step {step}: {text:x?} overlaps");
                        live.push((text, h));
                    }
                    Err(Error::Overlap) => assert!(overlaps, "seed {seed} step {step}"),
                    Err(e) => panic!("seed {seed} step {step}: {e:?}"),
                }
            }
            let g = reg.pin();
            for _ in 0..200 {
                let pc = BASE - 64 + rng.random_range(0..SPAN + 128);
                let want = live.iter().find(|(t, _)| t.contains(&pc)).map(|(_, h)| h.0);
                let found = g.find_module(pc).map(|m| m.id());
                assert_eq!(found, want, "seed {seed} step {step} pc {:#x}", pc - BASE);
                if let Some((m, e)) = g.find_fde(pc) {
                    let off = (pc - m.text().start) as u32;
                    assert!(e.start <= off && off - e.start < e.len);
                }
            }
        }
        for (_, h) in live {
            reg.deregister(h).unwrap();
        }
        assert!(reg.pin().find_module(BASE).is_none());
    }
}
