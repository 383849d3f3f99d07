//! Registry benchmarks, clew against libgcc in the same run:
//!
//! - `lookup_hit_*` / `lookup_miss_*`: a PC to its FDE with N registered modules, clew's
//!   `reg.pin().find_fde(pc)` (a pin per lookup, and many lookups under one pin) against
//!   libgcc's `_Unwind_Find_FDE` with the same modules registered through
//!   `__register_frame_info`. `sparse`: one 64-byte module every 4 KiB; `dense`: one
//!   every 128 bytes (32 modules share a page).
//! - `register_*`: registering and deregistering one module with a background of N
//!   modules, clew (given bounds, and `compat::register_frame` deriving them) against
//!   `__register_frame_info` + `__deregister_frame_info`.
//!
//! The fake text lives in an address range reserved with `PROT_NONE`, so no real code
//! (which libgcc also unwinds through) can be mistaken for it. Run with
//! `cargo bench -p clew-unwinder --bench registry`; see BENCHMARKS.md.

mod common;

use std::ffi::c_void;
use std::hint::black_box;
use std::time::{Duration, Instant};

use clew_unwinder::{ModuleDesc, ModuleHandle, ModuleKind, Registry, compat};
use common::{DwarfEhBases, ObjectBuf};
use criterion::{BenchmarkId, Criterion};
use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EhFrame, EndianVec,
    FrameDescriptionEntry, FrameTable,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bytes of text each module covers (one FDE).
const TEXT_LEN: usize = 64;
const SPARSE_STRIDE: usize = 4096;
const DENSE_STRIDE: usize = 128;
const MAX_N: usize = 100_000;
const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];
/// Pre-generated lookup PCs, visited in order (a power of two).
const PCS: usize = 1 << 16;
/// Modules registered and deregistered by the `register_*` groups, in the gaps of the
/// sparse background (offset `POOL_OFFSET` into each background module's page).
const POOL: usize = 1024;
const POOL_OFFSET: usize = 2048;

/// The address space the fake modules live in.
struct Space {
    sparse: usize,
    dense: usize,
}

impl Space {
    fn reserve() -> Space {
        let len = MAX_N * SPARSE_STRIDE + MAX_N * DENSE_STRIDE + (2 << 20);
        // SAFETY: an anonymous PROT_NONE reservation; nothing is ever mapped or read there.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "reserving address space");
        let base = (p as usize + (1 << 20)) & !((1 << 20) - 1);
        Space {
            sparse: base,
            dense: base + MAX_N * SPARSE_STRIDE,
        }
    }
}

/// One module: its text start and a zero-terminated `.eh_frame` (one CIE, one FDE)
/// written with gimli, leaked.
#[derive(Clone, Copy)]
struct FakeModule {
    start: usize,
    eh_frame: &'static [u8],
}

impl FakeModule {
    fn new(start: usize) -> FakeModule {
        const RSP: gimli::Register = gimli::X86_64::RSP;
        const RBP: gimli::Register = gimli::X86_64::RBP;
        const RA: gimli::Register = gimli::X86_64::RA;
        let encoding = gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 1,
            address_size: 8,
        };
        let mut table = FrameTable::default();
        let mut cie = CommonInformationEntry::new(encoding, 1, -8, RA);
        cie.add_instruction(CallFrameInstruction::Cfa(RSP, 8));
        cie.add_instruction(CallFrameInstruction::Offset(RA, -8));
        let cie = table.add_cie(cie);
        let mut fde = FrameDescriptionEntry::new(Address::Constant(start as u64), TEXT_LEN as u32);
        fde.add_instruction(1, CallFrameInstruction::CfaOffset(16));
        fde.add_instruction(1, CallFrameInstruction::Offset(RBP, -16));
        fde.add_instruction(4, CallFrameInstruction::CfaRegister(RBP));
        table.add_fde(cie, fde);
        let mut eh = EhFrame(EndianVec::new(gimli::LittleEndian));
        table.write_eh_frame(&mut eh).expect("writing .eh_frame");
        let mut bytes = eh.0.into_vec();
        bytes.extend_from_slice(&[0; 4]);
        FakeModule {
            start,
            eh_frame: Box::leak(bytes.into_boxed_slice()),
        }
    }

    fn desc(&self) -> ModuleDesc<'static> {
        ModuleDesc {
            name: "bench",
            kind: ModuleKind::Jit,
            text: Some(self.start..self.start + TEXT_LEN),
            eh_frame: self.eh_frame,
            eh_frame_hdr: None,
            lsda: None,
        }
    }
}

fn modules(base: usize, stride: usize, n: usize) -> Vec<FakeModule> {
    (0..n).map(|i| FakeModule::new(base + i * stride)).collect()
}

/// libgcc's registrations of a set of modules, undone on drop.
struct LibgccSet<'m> {
    modules: &'m [FakeModule],
    objects: Vec<ObjectBuf>,
}

impl<'m> LibgccSet<'m> {
    /// Registers from the highest address down: libgcc 12 keeps its objects in a list
    /// sorted by decreasing address and classifies them on the first lookup; this order
    /// makes that classification linear instead of quadratic.
    fn register(modules: &'m [FakeModule]) -> Self {
        let mut objects = vec![[0usize; 8]; modules.len()];
        for (m, ob) in modules.iter().zip(objects.iter_mut()).rev() {
            // SAFETY: a zero-terminated section and an object buffer, both alive until
            // deregistered in `drop`.
            unsafe { common::__register_frame_info(m.eh_frame.as_ptr(), ob) };
        }
        // Let libgcc classify them now, as a running process would have.
        if let Some(m) = modules.first() {
            assert!(!libgcc_find(m.start).is_null());
        }
        LibgccSet { modules, objects }
    }
}

impl Drop for LibgccSet<'_> {
    fn drop(&mut self) {
        // Highest first: the head of libgcc 12's sorted list.
        for m in self.modules.iter().rev() {
            // SAFETY: registered in `register`.
            let ob = unsafe { common::__deregister_frame_info(m.eh_frame.as_ptr()) };
            assert!(!ob.is_null());
        }
        self.objects.clear();
    }
}

#[inline(always)]
fn libgcc_find(pc: usize) -> *const u8 {
    let mut bases = DwarfEhBases::new();
    // SAFETY: libgcc's lookup; `bases` is a valid out-parameter.
    unsafe { common::_Unwind_Find_FDE(pc as *const c_void, &mut bases) }
}

fn register_clew(reg: &Registry, modules: &[FakeModule]) -> Vec<ModuleHandle> {
    modules
        .iter()
        // SAFETY: the sections are leaked.
        .map(|m| unsafe { reg.register(&m.desc()) }.expect("register"))
        .collect()
}

#[derive(Clone, Copy)]
enum Layout {
    Sparse,
    Dense,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Sparse => "sparse",
            Layout::Dense => "dense",
        }
    }
    /// A PC in the gap after module `m` (inside the same page for `sparse`).
    fn miss(self, m: &FakeModule, rng: &mut SmallRng) -> usize {
        match self {
            Layout::Sparse => m.start + POOL_OFFSET + TEXT_LEN + rng.random_range(0..1024),
            Layout::Dense => m.start + TEXT_LEN + rng.random_range(0..DENSE_STRIDE - TEXT_LEN),
        }
    }
}

fn lookups(c: &mut Criterion, layout: Layout, all: &[FakeModule], sizes: &[usize], gcc: &str) {
    let mut rng = SmallRng::seed_from_u64(0xc1e3);
    for &n in sizes {
        let mods = &all[..n];
        let reg = Registry::new();
        let handles = register_clew(&reg, mods);
        let libgcc = LibgccSet::register(mods);
        let hits: Vec<usize> = (0..PCS)
            .map(|_| mods[rng.random_range(0..n)].start + rng.random_range(0..TEXT_LEN))
            .collect();
        let misses: Vec<usize> = (0..PCS)
            .map(|_| layout.miss(&mods[rng.random_range(0..n)], &mut rng))
            .collect();
        // Both find every hit and no miss.
        {
            let g = reg.pin();
            for (&h, &m) in hits.iter().zip(&misses).take(4096) {
                assert!(g.find_fde(h).is_some() && g.find_fde(m).is_none());
                assert!(!libgcc_find(h).is_null() && libgcc_find(m).is_null());
            }
        }
        for (what, pcs) in [("hit", &hits), ("miss", &misses)] {
            let mut group = c.benchmark_group(format!("lookup_{what}_{}", layout.name()));
            group.bench_function(BenchmarkId::new("clew pin+find_fde", n), |b| {
                let mut i = 0;
                b.iter(|| {
                    let pc = pcs[i & (PCS - 1)];
                    i += 1;
                    let g = reg.pin();
                    black_box(g.find_fde(black_box(pc)).map(|(_, e)| e.offset))
                })
            });
            group.bench_function(BenchmarkId::new("clew find_fde (one pin)", n), |b| {
                let g = reg.pin();
                let mut i = 0;
                b.iter(|| {
                    let pc = pcs[i & (PCS - 1)];
                    i += 1;
                    black_box(g.find_fde(black_box(pc)).map(|(_, e)| e.offset))
                })
            });
            group.bench_function(
                BenchmarkId::new(format!("{gcc} _Unwind_Find_FDE"), n),
                |b| {
                    let mut i = 0;
                    b.iter(|| {
                        let pc = pcs[i & (PCS - 1)];
                        i += 1;
                        black_box(libgcc_find(black_box(pc)))
                    })
                },
            );
            group.finish();
        }
        drop(libgcc);
        for h in handles {
            reg.deregister(h).expect("deregister");
        }
    }
}

/// Registers then deregisters the pool modules, `iters` of each in total, in batches,
/// and returns the time spent registering (`time_register`) or deregistering.
fn batched(
    iters: u64,
    pool: &[FakeModule],
    time_register: bool,
    mut op: impl FnMut(&FakeModule, bool),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let batch = &pool[..left.min(pool.len())];
        left -= batch.len();
        let t = Instant::now();
        batch.iter().for_each(|m| op(m, true));
        let reg_time = t.elapsed();
        let t = Instant::now();
        // Newest first: the head of libgcc 12's list of unclassified objects.
        batch.iter().rev().for_each(|m| op(m, false));
        let dereg_time = t.elapsed();
        total += if time_register { reg_time } else { dereg_time };
    }
    total
}

fn registration(c: &mut Criterion, background: &[FakeModule], pool: &[FakeModule], gcc: &str) {
    for n in [0, MAX_N] {
        let reg = Registry::new();
        let handles = register_clew(&reg, &background[..n]);
        let libgcc = LibgccSet::register(&background[..n]);
        let mut objects = vec![[0usize; 8]; pool.len()];
        let obj_of = |m: &FakeModule| (m.start - pool[0].start) / SPARSE_STRIDE;

        let mut group = c.benchmark_group("register_pair");
        group.bench_function(BenchmarkId::new("clew register+deregister", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let m = &pool[i % POOL];
                i += 1;
                // SAFETY: leaked section.
                let h = unsafe { reg.register(black_box(&m.desc())) }.unwrap();
                reg.deregister(h).unwrap();
            })
        });
        group.bench_function(
            BenchmarkId::new("clew compat::register_frame+deregister_frame", n),
            |b| {
                let mut i = 0;
                b.iter(|| {
                    let m = &pool[i % POOL];
                    i += 1;
                    // SAFETY: leaked zero-terminated section.
                    unsafe { compat::register_frame(&reg, black_box(m.eh_frame.as_ptr())) }
                        .unwrap();
                    compat::deregister_frame(&reg, m.eh_frame.as_ptr()).unwrap();
                })
            },
        );
        group.bench_function(
            BenchmarkId::new(
                format!("{gcc} __register_frame_info+__deregister_frame_info"),
                n,
            ),
            |b| {
                let mut i = 0;
                b.iter(|| {
                    let m = &pool[i % POOL];
                    i += 1;
                    let ob = &mut objects[obj_of(m)];
                    *ob = [0; 8];
                    // SAFETY: deregistered right after.
                    unsafe {
                        common::__register_frame_info(black_box(m.eh_frame.as_ptr()), ob);
                        assert!(!common::__deregister_frame_info(m.eh_frame.as_ptr()).is_null());
                    }
                })
            },
        );
        group.finish();

        // The same pair with one lookup in between: libgcc 12 classifies an object on
        // the first lookup after registration, not when it is registered.
        let mut group = c.benchmark_group("register_pair_lookup");
        group.bench_function(BenchmarkId::new("clew register+find+deregister", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let m = &pool[i % POOL];
                i += 1;
                // SAFETY: leaked section.
                let h = unsafe { reg.register(black_box(&m.desc())) }.unwrap();
                assert!(reg.pin().find_fde(m.start + 8).is_some());
                reg.deregister(h).unwrap();
            })
        });
        group.bench_function(
            BenchmarkId::new(format!("{gcc} register+find+deregister"), n),
            |b| {
                let mut i = 0;
                b.iter(|| {
                    let m = &pool[i % POOL];
                    i += 1;
                    let ob = &mut objects[obj_of(m)];
                    *ob = [0; 8];
                    // SAFETY: deregistered right after.
                    unsafe {
                        common::__register_frame_info(black_box(m.eh_frame.as_ptr()), ob);
                        assert!(!libgcc_find(m.start + 8).is_null());
                        assert!(!common::__deregister_frame_info(m.eh_frame.as_ptr()).is_null());
                    }
                })
            },
        );
        group.finish();

        let mut clew_handles: Vec<Option<ModuleHandle>> = vec![None; POOL];
        for (group_name, what, time_register) in [
            ("register_only", "register", true),
            ("deregister_only", "deregister", false),
        ] {
            let mut group = c.benchmark_group(group_name);
            group.bench_function(BenchmarkId::new(format!("clew {what}"), n), |b| {
                b.iter_custom(|iters| {
                    batched(iters, pool, time_register, |m, register| {
                        let slot = &mut clew_handles[obj_of(m)];
                        if register {
                            // SAFETY: leaked section.
                            *slot = Some(unsafe { reg.register(&m.desc()) }.unwrap());
                        } else {
                            reg.deregister(slot.take().unwrap()).unwrap();
                        }
                    })
                })
            });
            group.bench_function(BenchmarkId::new(format!("{gcc} {what}"), n), |b| {
                b.iter_custom(|iters| {
                    batched(iters, pool, time_register, |m, register| {
                        if register {
                            let ob = &mut objects[obj_of(m)];
                            *ob = [0; 8];
                            // SAFETY: deregistered in this batch, before the buffer is reused.
                            unsafe { common::__register_frame_info(m.eh_frame.as_ptr(), ob) };
                        } else {
                            // SAFETY: registered in this batch.
                            let ob =
                                unsafe { common::__deregister_frame_info(m.eh_frame.as_ptr()) };
                            assert!(!ob.is_null());
                        }
                    })
                })
            });
            group.finish();
        }

        drop(libgcc);
        for h in handles {
            reg.deregister(h).expect("deregister");
        }
    }
}

fn main() {
    common::report_libgcc();
    let gcc = common::libgcc_label();
    let mut c = common::config();
    let space = Space::reserve();
    let sparse = modules(space.sparse, SPARSE_STRIDE, MAX_N);
    let dense = modules(space.dense, DENSE_STRIDE, MAX_N);
    let pool = modules(space.sparse + POOL_OFFSET, SPARSE_STRIDE, POOL);

    lookups(&mut c, Layout::Sparse, &sparse, &SIZES, &gcc);
    lookups(&mut c, Layout::Dense, &dense, &[10_000, 100_000], &gcc);
    registration(&mut c, &sparse, &pool, &gcc);
    c.final_summary();
}
