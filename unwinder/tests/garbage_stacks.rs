//! Walks over garbage always terminate, within the depth bound, without crashing, and
//! give the same result with and without the rule cache.
//!
//! Thousands of seeded random contexts: random register values, random stack words
//! (read through `SliceMemory` or through `LiveMemory::with_bounds` over a heap buffer),
//! PCs drawn at random and from real code: synthetic modules of every rule shape, and
//! the loaded objects of this test binary (registered in the global registry by
//! `os::linux::ensure_loaded_objects`), whose real CFI is then evaluated over garbage.
//! Stacks whose frame chain loops end with `CfaNotAdvancing` (or, through a signal
//! frame, the depth bound) instead of looping.

mod support;

use std::ops::Range;
use std::sync::OnceLock;

use clew_unwinder::{
    DEFAULT_MAX_DEPTH, Error, FrameKind, LiveMemory, Memory, ModuleKind, Native, Registry,
    SliceMemory, UnwindCache, Unwinder, global,
};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use support::*;

const SEEDS: u64 = 10_000;

/// PCs worth starting a walk at, or finding on a stack.
struct Pcs {
    /// Inside FDEs of the loaded objects (this test binary, libc…).
    real: Vec<u64>,
    /// Inside the synthetic modules.
    synthetic: Vec<u64>,
}

#[inline(never)]
fn a_real_function(x: u64) -> u64 {
    std::hint::black_box(x.wrapping_mul(3))
}

fn pcs() -> &'static Pcs {
    static PCS: OnceLock<Pcs> = OnceLock::new();
    PCS.get_or_init(|| {
        clew_unwinder::os::linux::ensure_loaded_objects();
        let mut real = vec![];
        global().for_each_module(|m| {
            for e in m.fde_index().fdes() {
                let start = (m.text().start + e.start as usize) as u64;
                real.extend([
                    start,
                    start + u64::from(e.len) / 2,
                    start + u64::from(e.len) - 1,
                ]);
            }
        });
        assert!(
            real.len() > 1000,
            "the loaded objects have FDEs: {}",
            real.len()
        );
        // Functions of this binary resolve through the global registry.
        let g = global().pin();
        for f in [
            a_real_function as fn(u64) -> u64 as usize,
            garbage_walk as fn(u64, &mut UnwindCache) -> Walk as usize,
            pcs as fn() -> &'static Pcs as usize,
        ] {
            let (m, _) = g
                .find_fde(f + 1)
                .expect("a function of the test binary has an FDE");
            assert_eq!(m.kind(), ModuleKind::Static);
            real.push(f as u64 + 1);
        }
        drop(g);

        let mut synthetic = vec![];
        for enc in [ABSPTR, PCREL_SDATA4, SDATA8] {
            let m = synthetic_module(enc);
            m.register(global(), ModuleKind::Jit).unwrap();
            for off in (0x100..0x800).step_by(7) {
                synthetic.push(m.at(off));
            }
        }
        Pcs { real, synthetic }
    })
}

/// One function of every rule shape, and a signal trampoline.
fn synthetic_module(enc: gimli::DwEhPe) -> Synth {
    leak_module(
        0x800,
        &[CieSpec::standard(enc), CieSpec::standard(enc).signal()],
        &[
            fde(0x100, 0x40, vec![]),
            fde(
                0x140,
                0x40,
                vec![
                    (1, I::CfaOffset(16)),
                    (1, I::Offset(RBP, -16)),
                    (4, I::CfaRegister(RBP)),
                ],
            ),
            fde(
                0x180,
                0x40,
                vec![
                    (0, I::CfaOffset(0x40)),
                    (0, I::Offset(RBX, -16)),
                    (0, I::Offset(R12, -24)),
                ],
            ),
            fde(
                0x1c0,
                0x40,
                vec![(0, I::CfaExpression(expr(&[0x77, 0x08, 0x06])))],
            ),
            fde(
                0x200,
                0x40,
                vec![
                    (0, I::ValExpression(RBX, expr(&[0x70, 5]))),
                    (0, I::Expression(R12, expr(&[0x10, 24, 0x1c]))),
                    (0, I::Register(R13, RAX)),
                    (0, I::ValOffset(R14, -8)),
                ],
            ),
            fde(
                0x240,
                0x40,
                vec![
                    (1, I::RememberState),
                    (1, I::CfaOffset(32)),
                    (8, I::RestoreState),
                ],
            ),
            fde(0x280, 0x40, vec![(0, I::Undefined(RA))]),
            fde_cie(
                1,
                0x2ff,
                0x41,
                vec![
                    (0, I::Cfa(RSP, 0x80)),
                    (0, I::Offset(RA, -0x80)),
                    (0, I::Offset(RSP, -0x78)),
                    (0, I::Offset(RBP, -0x70)),
                ],
            ),
            fde_cie(
                1,
                0x340,
                0x40,
                vec![
                    (0, I::Cfa(RSP, 0x80)),
                    (0, I::Expression(RA, expr(&[0x77, 0]))),
                    (0, I::Expression(RSP, expr(&[0x77, 8]))),
                ],
            ),
            fde(0x400, 0x400, vec![(0, I::CfaOffset(0x1000))]),
        ],
    )
}

/// Draws a word: random, a stack address, a real or synthetic PC, zero or small.
fn word(rng: &mut SmallRng, stack: &Range<u64>, pcs: &Pcs) -> u64 {
    match rng.random_range(0..8) {
        0 => rng.random(),
        1 | 2 => {
            let words = (stack.end - stack.start) / 8;
            stack.start
                + rng.random_range(0..=words) * 8
                + rng.random_range(0..2) * rng.random_range(0..8)
        }
        3 | 4 => pcs.real[rng.random_range(0..pcs.real.len())] + rng.random_range(0..2),
        5 => pcs.synthetic[rng.random_range(0..pcs.synthetic.len())] + rng.random_range(0..2),
        6 => 0,
        _ => rng.random_range(0..0x1000),
    }
}

/// Walks and checks that the walk ends within `max_depth + 1` items.
fn bounded_walk<M: Memory>(
    u: &Unwinder<'_, Native>,
    r: clew_unwinder::arch::x86_64::Regs,
    exact: bool,
    mem: &M,
    cache: Option<&mut UnwindCache>,
    max_depth: usize,
) -> Walk {
    let w = walk_once(u, r, exact, mem, cache, max_depth + 1);
    assert!(w.frames.len() <= max_depth + 1);
    // Only the last item can be an error; an error ends the walk.
    for f in &w.frames[..w.frames.len().saturating_sub(1)] {
        assert!(f.is_ok(), "{w:#?}");
    }
    // A frame followed by another passed the CFA checks: its CFA lies above its SP and
    // above its callee's CFA, unless it is a signal frame or the frame one interrupted
    // (those are followed by, or are, a frame with an exact PC).
    let frames: Vec<_> = w.frames.iter().flatten().collect();
    for i in 1..frames.len().saturating_sub(1) {
        let (a, b, c) = (frames[i - 1], frames[i], frames[i + 1]);
        if b.exact_pc || c.exact_pc {
            continue;
        }
        let (ca, cb) = (a.cfa.unwrap(), b.cfa.unwrap());
        assert!(cb > ca && cb >= b.sp, "frame {i}: {w:#?}");
    }
    w
}

/// One seeded garbage walk, with and without the (long-lived) cache.
fn garbage_walk(seed: u64, cache: &mut UnwindCache) -> Walk {
    let pcs = pcs();
    let mut rng = SmallRng::seed_from_u64(seed);
    let words = rng.random_range(0..512usize);
    let live = rng.random_bool(0.5);
    // The buffer is real memory in both cases; for `SliceMemory` it is just a copy
    // taken at some other address.
    let mut buf = vec![0u64; words];
    let base = if live {
        buf.as_ptr() as u64
    } else {
        0x7ffd_0000_0000 + rng.random_range(0..0x1000u64) * 8
    };
    let stack = base..base + 8 * words as u64;
    for w in buf.iter_mut() {
        *w = word(&mut rng, &stack, pcs);
    }
    let mut r = regs(0, 0, &[]);
    for g in r.gpr.iter_mut() {
        *g = word(&mut rng, &stack, pcs);
    }
    r.gpr[7] = if rng.random_bool(0.9) {
        stack.start + rng.random_range(0..=words as u64) * 8
    } else {
        rng.random()
    };
    r.gpr[16] = match rng.random_range(0..4) {
        0 => rng.random(),
        1 => pcs.synthetic[rng.random_range(0..pcs.synthetic.len())],
        _ => pcs.real[rng.random_range(0..pcs.real.len())],
    };
    let exact = rng.random_bool(0.5);
    let max_depth = [1, 2, 8, 64, DEFAULT_MAX_DEPTH][rng.random_range(0..5)];
    let u = Unwinder::<Native>::new(global())
        .with_max_depth(max_depth)
        .with_frame_pointer_fallback(rng.random_bool(0.5));

    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_le_bytes()).collect();
    let bounds = [stack.clone()];
    let (plain, cached) = if live {
        let mem = LiveMemory::with_bounds(&bounds);
        (
            bounded_walk(&u, r, exact, &mem, None, max_depth),
            bounded_walk(&u, r, exact, &mem, Some(cache), max_depth),
        )
    } else {
        let mem = SliceMemory {
            base,
            bytes: &bytes,
        };
        (
            bounded_walk(&u, r, exact, &mem, None, max_depth),
            bounded_walk(&u, r, exact, &mem, Some(cache), max_depth),
        )
    };
    assert_eq!(plain, cached, "seed {seed}: the cache changed the walk");
    drop(buf);
    plain
}

#[test]
fn garbage_walks_terminate() {
    let mut cache = Box::new(UnwindCache::new());
    let (mut frames, mut errors, mut deep) = (0, 0, 0);
    let mut kinds = [0usize; 4];
    for seed in 0..SEEDS {
        let w = garbage_walk(seed, &mut cache);
        frames += w.frames.len();
        errors += w.error().is_some() as usize;
        deep = deep.max(w.frames.len());
        for f in w.frames.iter().flatten() {
            kinds[match f.kind {
                FrameKind::Module(ModuleKind::Static) => 0,
                FrameKind::Module(_) => 1,
                FrameKind::FramePointer => 2,
                _ => 3,
            }] += 1;
        }
    }
    // The seeds did exercise something: real and synthetic CFI, frame pointers, errors.
    assert!(kinds.iter().all(|&k| k > 100), "frame kinds {kinds:?}");
    assert!(
        errors > 100 && frames > SEEDS as usize && deep > 3,
        "{errors} {frames} {deep}"
    );
}

/// Random stacks whose return addresses point into real and synthetic code at the
/// right places: walks go deeper, through real CFI.
#[test]
fn plausible_stacks_terminate() {
    let pcs = pcs();
    let mut cache = Box::new(UnwindCache::new());
    for seed in 0..SEEDS / 5 {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xfeed);
        let words = 2048;
        let mut buf = vec![0u64; words];
        let base = buf.as_ptr() as u64;
        let stack = base..base + 8 * words as u64;
        // Mostly PCs, with increasing stack addresses as saved frame pointers.
        for (i, w) in buf.iter_mut().enumerate() {
            *w = match rng.random_range(0..4) {
                0 | 1 => pcs.real[rng.random_range(0..pcs.real.len())] + 1,
                2 => base + 8 * (i as u64 + rng.random_range(1..64)).min(words as u64 - 1),
                _ => word(&mut rng, &stack, pcs),
            };
        }
        let mut r = regs(
            pcs.real[rng.random_range(0..pcs.real.len())],
            base + 8 * rng.random_range(0..64),
            &[],
        );
        r.gpr[6] = base + 8 * rng.random_range(0..128);
        let bounds = [stack.clone()];
        let mem = LiveMemory::with_bounds(&bounds);
        let u = Unwinder::<Native>::new(global()).with_frame_pointer_fallback(rng.random_bool(0.5));
        let plain = bounded_walk(&u, r, false, &mem, None, DEFAULT_MAX_DEPTH);
        let cached = bounded_walk(&u, r, false, &mem, Some(&mut cache), DEFAULT_MAX_DEPTH);
        assert_eq!(plain, cached, "seed {seed}");
        drop(buf);
    }
}

fn fresh_with(m: &Synth) -> Registry {
    let reg = Registry::new();
    m.register(&reg, ModuleKind::Jit).unwrap();
    reg
}

#[test]
fn frame_pointer_cycles_end() {
    let reg = Registry::new();
    let u = Unwinder::<Native>::new(&reg).with_frame_pointer_fallback(true);
    let mut s = Stack::new(0x7000_0000_0000, 64);
    // A frame whose saved frame pointer is itself.
    let a = s.addr(8);
    s.set(a, a);
    s.set(a + 8, 0x20);
    let w = walk(&u, regs(0x10, s.addr(2), &[(RBP, a)]), false, &s.mem());
    assert_eq!(w.frames.len(), 3, "{w:#?}");
    assert!(
        w.frames[..2]
            .iter()
            .all(|f| f.as_ref().unwrap().kind == FrameKind::FramePointer)
    );
    assert_eq!(
        w.error(),
        Some(Error::CfaNotAdvancing {
            pc: 0x20,
            cfa: a + 16
        })
    );
    // Two frames pointing at each other.
    let b = s.addr(20);
    s.set(a, b);
    s.set(b, a);
    s.set(b + 8, 0x30);
    let w = walk(&u, regs(0x10, s.addr(2), &[(RBP, a)]), false, &s.mem());
    assert_eq!(w.frames.len(), 4, "{w:#?}");
    assert_eq!(
        w.error(),
        Some(Error::CfaNotAdvancing {
            pc: 0x30,
            cfa: a + 16
        })
    );
}

#[test]
fn cfi_cycles_end() {
    // An rbp frame whose return address leads back into itself, with the same rbp.
    let m = leak_module(
        0x200,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[
            fde(
                0x100,
                0x40,
                vec![
                    (0, I::CfaOffset(16)),
                    (0, I::Offset(RBP, -16)),
                    (0, I::CfaRegister(RBP)),
                ],
            ),
            // CFA = a constant.
            fde(
                0x140,
                0x40,
                vec![(0, I::CfaExpression(expr(&[0x10, 0x80, 0x01])))],
            ),
        ],
    );
    let reg = fresh_with(&m);
    let mut s = Stack::new(0x7000_0000_0000, 64);
    let a = s.addr(8);
    s.set(a, a);
    s.set(a + 8, m.at(0x105));
    let w = walk(
        &Unwinder::new(&reg),
        regs(m.at(0x110), s.addr(2), &[(RBP, a)]),
        false,
        &s.mem(),
    );
    assert_eq!(w.frames.len(), 3, "{w:#?}");
    assert_eq!(
        w.error(),
        Some(Error::CfaNotAdvancing {
            pc: m.at(0x105),
            cfa: a + 16
        })
    );

    // CFA 0x80, below the stack pointer: the first frame already fails.
    let w = walk(
        &Unwinder::new(&reg),
        regs(m.at(0x150), s.addr(2), &[]),
        true,
        &s.mem(),
    );
    assert_eq!(w.frames.len(), 2, "{w:#?}");
    assert!(matches!(
        w.error(),
        Some(Error::CfaNotAdvancing { .. } | Error::BadAddress { .. })
    ));
}

#[test]
fn signal_frame_cycles_are_bounded() {
    // A signal trampoline that "interrupted" itself with the same registers: the CFA
    // checks do not apply across signal frames, the depth bound does.
    let m = leak_module(
        0x200,
        &[CieSpec::standard(ABSPTR).signal()],
        &[fde(
            0xff,
            0x41,
            vec![
                (0, I::Cfa(RSP, 0x80)),
                (0, I::Offset(RA, -0x80)),
                (0, I::Offset(RSP, -0x78)),
            ],
        )],
    );
    let reg = fresh_with(&m);
    let mut s = Stack::new(0x7000_0000_0000, 64);
    let sp = s.addr(4);
    s.set(sp, m.at(0x100));
    s.set(sp + 8, sp);
    for depth in [1, 10, 100, DEFAULT_MAX_DEPTH] {
        let u = Unwinder::<Native>::new(&reg).with_max_depth(depth);
        let w = bounded_walk(&u, regs(m.at(0x100), sp, &[]), true, &s.mem(), None, depth);
        assert_eq!(w.frames.len(), depth + 1);
        assert_eq!(w.error(), Some(Error::TooDeep));
    }
}
