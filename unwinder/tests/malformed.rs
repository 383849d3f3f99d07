//! Malformed unwind information and bad registrations fail with an `Err`, never a
//! panic, a hang or a read out of bounds, and leave the registry as it was.
//!
//! Covered: `.eh_frame` truncated at every byte length, wrong length fields, CIE
//! pointers to nowhere or to an FDE, invalid pointer encodings, huge augmentation
//! lengths, FDEs outside the text (`FdeOutsideText`), empty and wrapping text ranges
//! (`BadTextRange`), too-large ranges (`TooLarge`), overlapping registrations at every
//! level of the address map (`Overlap`, checked against a model of what is registered),
//! deregistering twice (`NotRegistered`), `eh_frame::zero_terminated_len` on garbage
//! next to a guard page, CFI bombs at walk time (`DW_OP_skip` loops, stack overflows,
//! nested states, too many rules, unknown opcodes), and proptests feeding random bytes
//! and random mutations of a valid section to registration and walks.

mod support;

use std::ops::Range;

use clew_unwinder::{
    Error, ModuleDesc, ModuleHandle, ModuleKind, Native, Registry, Unwinder, compat, eh_frame,
};
use proptest::prelude::*;
use support::*;

/// Text of the valid section: fixed, unbacked addresses (the registry never reads text).
const TEXT: usize = 0x5555_0000_0000;
const TEXT_LEN: usize = 0x1000;

/// A valid section: two CIEs (absptr; udata8 with `S`) and four FDEs.
fn valid_section() -> Vec<u8> {
    let cies = [
        CieSpec::standard(ABSPTR),
        CieSpec::standard(UDATA8).signal(),
    ];
    let fdes = [
        fde_cie(
            0,
            0x100,
            0x40,
            vec![(1, I::CfaOffset(16)), (1, I::Offset(RBP, -16))],
        ),
        fde_cie(1, 0x200, 0x40, vec![(4, I::CfaOffset(32))]),
        fde_cie(
            0,
            0x300,
            0x40,
            vec![(0, I::CfaExpression(expr(&[0x77, 8])))],
        ),
        fde_cie(1, 0x400, 0x40, vec![(2, I::Offset(RBX, -16))]),
    ];
    build_eh_frame(&cies, &fdes, TEXT as u64, 0)
}

/// `(offset, length including the length field)` of every record, terminator excluded.
fn records(section: &[u8]) -> Vec<(usize, usize)> {
    let mut out = vec![];
    let mut off = 0;
    loop {
        let len = u32::from_le_bytes(section[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            return out;
        }
        out.push((off, len + 4));
        off += len + 4;
    }
}

fn leak(bytes: &[u8]) -> &'static [u8] {
    Box::leak(bytes.to_vec().into_boxed_slice())
}

fn desc(eh_frame: &'static [u8], text: Option<Range<usize>>) -> ModuleDesc<'static> {
    ModuleDesc {
        name: "malformed",
        kind: ModuleKind::Jit,
        text,
        eh_frame,
        eh_frame_hdr: None,
        lsda: None,
    }
}

fn register(
    reg: &Registry,
    eh_frame: &'static [u8],
    text: Option<Range<usize>>,
) -> Result<ModuleHandle, Error> {
    // SAFETY: every section in these tests is leaked.
    unsafe { reg.register(&desc(eh_frame, text)) }
}

fn text() -> Option<Range<usize>> {
    Some(TEXT..TEXT + TEXT_LEN)
}

/// Registers `bytes` with and without text bounds in a fresh registry and expects a
/// `BadEhFrame` error and an empty registry each time.
fn expect_bad(bytes: &[u8], what: &str) {
    let bytes = leak(bytes);
    for t in [text(), None] {
        let reg = Registry::new();
        let r = register(&reg, bytes, t.clone());
        assert!(
            matches!(r, Err(Error::BadEhFrame(_))),
            "{what} (text {t:x?}): {r:?}"
        );
        assert!(reg.is_empty());
        assert!(reg.pin().find_module(TEXT + 0x100).is_none());
    }
}

/// Registers `bytes` in a fresh registry; if that works, looks up and walks every PC
/// of the text once. Must not panic or hang; the result does not matter.
fn register_and_use(bytes: &'static [u8], text: Option<Range<usize>>, stack: &[u8]) {
    let reg = Registry::new();
    let Ok(h) = register(&reg, bytes, text) else {
        assert!(reg.is_empty());
        return;
    };
    let mut text = None;
    reg.for_each_module(|m| text = Some(m.text()));
    let text = text.expect("one module");
    let mut fdes = vec![];
    {
        let g = reg.pin();
        let m = g
            .find_module(text.start)
            .expect("registered module is found");
        assert_eq!(m.id(), h.0);
        for e in m.fde_index().fdes() {
            fdes.push(text.start as u64 + u64::from(e.start));
            if let Some((_, e)) = g.find_fde(text.start + e.start as usize) {
                let _ = m.parse_fde(e);
            }
        }
    }
    let mem = clew_unwinder::SliceMemory {
        base: 0x7000_0000_0000,
        bytes: stack,
    };
    let u = Unwinder::<Native>::new(&reg).with_max_depth(16);
    for pc in fdes
        .into_iter()
        .chain([text.start as u64, text.end as u64 - 1])
    {
        for exact in [false, true] {
            let r = regs(pc + 1, 0x7000_0000_0000 + 64, &[(RBP, 0x7000_0000_0080)]);
            let w = walk_once(&u, r, exact, &mem, None, 17);
            assert!(w.frames.len() <= 17);
        }
    }
    reg.deregister(h).unwrap();
    assert!(reg.is_empty());
}

#[test]
fn valid_section_registers() {
    let bytes = leak(&valid_section());
    let reg = Registry::new();
    let h = register(&reg, bytes, text()).unwrap();
    let g = reg.pin();
    for f in [0x100, 0x200, 0x300, 0x400] {
        let (m, e) = g.find_fde(TEXT + f + 0x3f).expect("fde");
        assert_eq!(m.id(), h.0);
        assert_eq!((e.start, e.len), (f as u32, 0x40));
        assert!(g.find_fde(TEXT + f + 0x40).is_none());
    }
    drop(g);
    // Exact length and zero-terminated length agree.
    // SAFETY: a valid, zero-terminated section.
    let len = unsafe { eh_frame::zero_terminated_len(bytes.as_ptr(), None) }.unwrap();
    assert_eq!(len, bytes.len());
    assert_eq!(records(bytes).len(), 6);
}

#[test]
fn truncated_at_every_length() {
    let valid = valid_section();
    let body = valid.len() - 4;
    let recs = records(&valid);
    let boundaries: Vec<usize> = recs.iter().map(|&(o, l)| o + l).chain([0]).collect();
    for len in 0..valid.len() {
        let bytes = leak(&valid[..len]);
        // Without the terminator, measuring the section fails inside the limit.
        // SAFETY: `len` readable bytes.
        let measured = unsafe { eh_frame::zero_terminated_len(bytes.as_ptr(), Some(len)) };
        assert!(measured.is_err(), "len {len}: {measured:?}");
        for t in [text(), None] {
            let reg = Registry::new();
            let r = register(&reg, bytes, t.clone());
            // FDEs wholly inside the truncated section.
            let fdes: Vec<_> = recs
                .iter()
                .filter(|&&(o, l)| o + l <= len && valid[o + 4..o + 8] != [0; 4])
                .collect();
            if boundaries.contains(&len) && len <= body {
                if t.is_none() && fdes.is_empty() {
                    assert_eq!(r, Err(Error::BadTextRange), "len {len}");
                    continue;
                }
                let h = r.unwrap_or_else(|e| panic!("len {len} is a record boundary: {e}"));
                let g = reg.pin();
                let m = g.find_module(TEXT + 0x100).or(g.find_module(TEXT + 0x200));
                assert_eq!(
                    m.map(|m| m.fde_index().fdes().len()),
                    Some(fdes.len()),
                    "len {len}"
                );
                drop(g);
                reg.deregister(h).unwrap();
            } else {
                assert!(
                    matches!(r, Err(Error::BadEhFrame(_))),
                    "len {len} (text {t:x?}): {r:?}"
                );
            }
            assert!(reg.is_empty());
        }
    }
}

#[test]
fn wrong_length_fields() {
    let valid = valid_section();
    let recs = records(&valid);
    let set_len = |at: usize, v: u32| {
        let mut b = valid.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    let (cie0, fde0) = (recs[0].0, recs[1].0);
    expect_bad(
        &set_len(cie0, recs[0].1 as u32 + 0x1000),
        "CIE longer than the section",
    );
    expect_bad(&set_len(cie0, 0xffff_fff0), "CIE length near 4 GiB");
    expect_bad(&set_len(fde0, 4), "FDE holding only its CIE pointer");
    expect_bad(&set_len(fde0, 10), "FDE cut inside its address");
    expect_bad(&set_len(cie0, 3), "CIE cut inside its id");
    // 64-bit length escape followed by a huge length.
    let mut b = valid.clone();
    b.splice(
        cie0..cie0 + 4,
        [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x10],
    );
    expect_bad(&b, "64-bit length past the section");
    // Lengths one off: whatever they parse to, no panic.
    for (o, l) in recs {
        for d in [-1i64, 1, 2, -4] {
            let b = set_len(o, (l as i64 - 4 + d) as u32);
            for t in [text(), None] {
                register_and_use(leak(&b), t, &[0u8; 256]);
            }
        }
    }
}

#[test]
fn bad_cie_pointers() {
    let valid = valid_section();
    let recs = records(&valid);
    let set_ptr = |fde: usize, v: u32| {
        let mut b = valid.clone();
        b[fde + 4..fde + 8].copy_from_slice(&v.to_le_bytes());
        b
    };
    // recs: CIE0, FDE0, CIE1, FDE1, FDE2, FDE3.
    let (fde0, fde1, fde3) = (recs[1].0, recs[3].0, recs[5].0);
    // The pointer is relative to the pointer field itself.
    let to = |fde: usize, target: usize| (fde + 4 - target) as u32;
    expect_bad(&set_ptr(fde1, to(fde1, fde0)), "CIE pointer to an FDE");
    expect_bad(&set_ptr(fde3, to(fde3, fde1)), "CIE pointer to another FDE");
    expect_bad(&set_ptr(fde1, to(fde1, 2)), "CIE pointer into a CIE");
    expect_bad(
        &set_ptr(fde1, to(fde1, fde0 + 8)),
        "CIE pointer into an FDE",
    );
    expect_bad(
        &set_ptr(fde0, (fde0 + 4 + 0x100) as u32),
        "CIE pointer before the section",
    );
    expect_bad(
        &set_ptr(fde0, u32::MAX),
        "CIE pointer far before the section",
    );
    // Zero makes the FDE a CIE whose fields are garbage.
    expect_bad(&set_ptr(fde0, 0), "FDE turned into a CIE");
}

#[test]
fn bad_pointer_encodings() {
    let valid = valid_section();
    let recs = records(&valid);
    let cie1 = recs[2].0;
    // CIE1: length, id, version, "zRS\0", code align, data align, RA, aug length, encoding.
    assert_eq!(&valid[cie1 + 9..cie1 + 13], b"zRS\0");
    let enc_at = cie1 + 17;
    assert_eq!(valid[enc_at], UDATA8.0);
    let with = |at: usize, v: u8| {
        let mut b = valid.clone();
        b[at] = v;
        b
    };
    for enc in [0x0f, 0x0d, 0x07, 0x05, 0x54, 0x34, 0x44, 0x74, 0xff, 0x8f] {
        expect_bad(
            &with(enc_at, enc),
            &format!("FDE pointer encoding {enc:#x}"),
        );
    }
    // Text-relative: no text base without text bounds; addresses off the text with it.
    let b = leak(&with(enc_at, 0x24));
    assert!(matches!(
        register(&Registry::new(), b, None),
        Err(Error::BadEhFrame(_))
    ));
    assert!(matches!(
        register(&Registry::new(), b, text()),
        Err(Error::FdeOutsideText { .. })
    ));
    // Valid encodings of the wrong size misparse: no panic, whatever the result.
    for enc in [
        0x00, 0x01, 0x02, 0x03, 0x09, 0x0a, 0x0b, 0x0c, 0x10, 0x1b, 0x84,
    ] {
        for t in [text(), None] {
            register_and_use(leak(&with(enc_at, enc)), t, &[0x55u8; 256]);
        }
    }
}

#[test]
fn huge_augmentation_lengths() {
    let valid = valid_section();
    let recs = records(&valid);
    let (cie1, fde1) = (recs[2].0, recs[3].0);
    let with = |at: usize, v: u8| {
        let mut b = valid.clone();
        b[at] = v;
        b
    };
    // The CIE's augmentation data runs past the CIE.
    assert_eq!(valid[cie1 + 16], 1);
    expect_bad(&with(cie1 + 16, 0x7f), "CIE augmentation length 127");
    // The FDE's (after CIE pointer, udata8 address and length).
    assert_eq!(valid[fde1 + 24], 0);
    expect_bad(&with(fde1 + 24, 0x7f), "FDE augmentation length 127");

    // A hand-made CIE whose augmentation length is a 10-byte ULEB128 of 2^64 - 1.
    let mut cie = vec![0, 0, 0, 0, 0, 0, 0, 0, 1, b'z', b'R', 0, 1, 0x78, 0x10];
    cie.extend([0xff; 9]);
    cie.push(0x01);
    cie.extend([0x04, 0, 0, 0]);
    let len = (cie.len() - 4) as u32;
    cie[..4].copy_from_slice(&len.to_le_bytes());
    let mut section = cie.clone();
    section.extend([0; 4]);
    expect_bad(&section, "CIE augmentation length 2^64 - 1");
    // Same, with an FDE pointing at it: the FDE cannot be parsed either.
    let mut fde = vec![0u8; 8];
    let ptr = (cie.len() + 4) as u32;
    fde[4..8].copy_from_slice(&ptr.to_le_bytes());
    fde.extend((TEXT as u64 + 0x100).to_le_bytes());
    fde.extend(0x40u64.to_le_bytes());
    fde.push(0);
    let len = (fde.len() - 4) as u32;
    fde[..4].copy_from_slice(&len.to_le_bytes());
    let mut section = cie;
    section.extend(fde);
    section.extend([0; 4]);
    expect_bad(&section, "FDE of a CIE with a huge augmentation length");
}

#[test]
fn fde_outside_the_text() {
    let bytes = leak(&valid_section());
    let cases = [
        (TEXT + 0x150..TEXT + 0x1000, TEXT + 0x100, TEXT + 0x140),
        (TEXT..TEXT + 0x420, TEXT + 0x400, TEXT + 0x440),
        (TEXT + 0x101..TEXT + 0x43f, TEXT + 0x100, TEXT + 0x140),
    ];
    for (t, b, e) in cases {
        let reg = Registry::new();
        assert_eq!(
            register(&reg, bytes, Some(t)),
            Err(Error::FdeOutsideText {
                pc_begin: b as u64,
                pc_end: e as u64,
            })
        );
        assert!(reg.is_empty());
    }
    // The smallest text that holds every FDE is fine.
    let reg = Registry::new();
    register(&reg, bytes, Some(TEXT + 0x100..TEXT + 0x440)).unwrap();

    // An FDE whose range wraps around the address space.
    let wrap = leak(&build_eh_frame(
        &[CieSpec::standard(ABSPTR)],
        &[fde(0, 0x100, vec![])],
        u64::MAX - 0x10,
        0,
    ));
    for t in [None, Some(usize::MAX - 0x10..usize::MAX)] {
        let r = register(&Registry::new(), wrap, t);
        assert!(matches!(r, Err(Error::FdeOutsideText { .. })), "{r:?}");
    }
}

#[test]
fn bad_and_too_large_text_ranges() {
    let bytes = leak(&valid_section());
    let reg = Registry::new();
    // Empty and reversed (wrapping) ranges, built so that clippy lets them be.
    for (start, end) in [(TEXT, TEXT), (TEXT + 1, TEXT), (usize::MAX, 0)] {
        let t = start..end;
        assert_eq!(register(&reg, bytes, Some(t)), Err(Error::BadTextRange));
    }
    // No FDE (only CIEs, or only empty FDEs) and no text: no bounds to derive.
    let cies_only = leak(&build_eh_frame(&[CieSpec::standard(ABSPTR)], &[], 0, 0));
    let empty_fdes = leak(&build_eh_frame(
        &[CieSpec::standard(ABSPTR)],
        &[fde(0x100, 0, vec![]), fde(0x200, 0, vec![])],
        TEXT as u64,
        0,
    ));
    for b in [cies_only, empty_fdes, leak(&[0, 0, 0, 0]), leak(&[])] {
        assert_eq!(register(&reg, b, None), Err(Error::BadTextRange));
        // SAFETY: leaked, zero-terminated (or the 4-byte terminator is there).
        if !b.is_empty() {
            assert_eq!(
                unsafe { compat::register_frame(&reg, b.as_ptr()) },
                Err(Error::BadTextRange)
            );
        }
    }
    // Over 4 GiB of text.
    assert_eq!(
        register(&reg, bytes, Some(TEXT..TEXT + (5 << 30))),
        Err(Error::TooLarge)
    );
    let far = leak(&build_eh_frame(
        &[CieSpec::standard(ABSPTR)],
        &[fde(0, 0x10, vec![]), fde(0x1_0000_0000, 0x10, vec![])],
        TEXT as u64,
        0,
    ));
    assert_eq!(register(&reg, far, None), Err(Error::TooLarge));
    assert!(reg.is_empty());
    // Theseus's shim rejects wrapping text too.
    // SAFETY: leaked bytes.
    let r = unsafe {
        compat::theseus::register_unwind_info(
            usize::MAX - 10,
            100,
            bytes.as_ptr() as usize,
            bytes.len(),
        )
    };
    assert_eq!(r, Err("text range wraps around"));
}

#[test]
fn too_many_address_regions() {
    // The map holds 16 regions of 512 GiB; the 17th distinct one is refused.
    let reg = Registry::new();
    let region = 1usize << 39;
    let one = |i: usize| {
        let t = (i + 1) * region + 0x1000;
        leak_module_at(
            t..t + 0x100,
            &[CieSpec::standard(ABSPTR)],
            &[fde(0, 0x10, vec![])],
        )
    };
    let mut handles = vec![];
    for i in 0..16 {
        handles.push(one(i).register(&reg, ModuleKind::Jit).unwrap());
    }
    assert_eq!(
        one(16).register(&reg, ModuleKind::Jit),
        Err(Error::TooLarge)
    );
    assert_eq!(reg.len(), 16);
    // Existing regions keep working and are reused after deregistration.
    reg.deregister(handles.pop().unwrap()).unwrap();
    let again = one(15);
    again.register(&reg, ModuleKind::Jit).unwrap();
    assert_eq!(reg.len(), 16);
    assert!(reg.pin().find_module(again.text.start).is_some());
}

/// What is registered, as a plain list, to compare lookups against.
struct Model {
    mods: Vec<(Range<usize>, ModuleHandle)>,
}

impl Model {
    fn expect(&self, pc: usize) -> Option<ModuleHandle> {
        self.mods.iter().find(|(r, _)| r.contains(&pc)).map(|m| m.1)
    }
    /// Every module boundary and its neighbours, plus `extra`.
    fn check(&self, reg: &Registry, extra: &[usize]) {
        assert_eq!(reg.len(), self.mods.len());
        let g = reg.pin();
        let mut pcs: Vec<usize> = extra.to_vec();
        for (r, _) in &self.mods {
            for p in [r.start, r.end] {
                pcs.extend([
                    p.wrapping_sub(1),
                    p,
                    p.wrapping_add(1),
                    p.wrapping_sub(4097),
                    p + 4096,
                ]);
            }
        }
        for pc in pcs {
            let found = g.find_module(pc).map(|m| ModuleHandle(m.id()));
            assert_eq!(found, self.expect(pc), "pc {pc:#x}");
        }
    }
}

fn module_at(t: Range<usize>) -> Synth {
    let len = (t.end - t.start).min(0x10) as u32;
    leak_module_at(t, &[CieSpec::standard(ABSPTR)], &[fde(0, len, vec![])])
}

#[test]
fn overlapping_registrations_change_nothing() {
    let reg = Registry::new();
    let mut model = Model { mods: vec![] };
    let add = |t: Range<usize>, model: &mut Model| {
        let h = module_at(t.clone())
            .register(&reg, ModuleKind::Jit)
            .unwrap();
        model.mods.push((t, h));
    };
    const P: usize = 0x6000_0000_0000;
    const MB2: usize = 2 << 20;
    const REGION: usize = 1 << 39;
    // Whole pages; modules sharing a page; a module across 2 MiB slots; one in its
    // own 512 GiB region.
    add(P + 0x1000..P + 0x3000, &mut model);
    add(P + 0x5100..P + 0x5200, &mut model);
    add(P + 0x5300..P + 0x5400, &mut model);
    add(P + 4 * MB2 - 0x3000..P + 5 * MB2 + 0x5000, &mut model);
    add(2 * REGION + 0x5000..2 * REGION + 0x6000, &mut model);
    let probes: Vec<usize> = (0..200)
        .map(|i| P + i * 0x777)
        .chain((0..64).map(|i| P + 4 * MB2 - 0x8000 + i * 0x9_1234))
        .chain((0..64).map(|i| 2 * REGION - 0x4000 + i * 0x1000))
        .collect();
    model.check(&reg, &probes);

    let overlapping = [
        P + 0x1000..P + 0x3000,
        P + 0x800..P + 0x1001,
        P + 0x2fff..P + 0x4000,
        P + 0x1800..P + 0x1900,
        P..P + 0x10000,
        P + 0x51ff..P + 0x5300,
        P + 0x5000..P + 0x5101,
        P + 0x5150..P + 0x5160,
        P + 0x53ff..P + 0x5401,
        P + 0x5000..P + 0x6000,
        P + 4 * MB2 + (1 << 20)..P + 4 * MB2 + (1 << 20) + 1,
        P + 4 * MB2 - 0x3001..P + 4 * MB2 - 0x2fff,
        P + 5 * MB2 + 0x4fff..P + 6 * MB2,
        P..P + 8 * MB2,
        // Across a region boundary: free in the first region, taken in the second.
        2 * REGION - 0x1000..2 * REGION + 0x5800,
        2 * REGION + 0x5fff..2 * REGION + 0x7000,
    ];
    for t in overlapping {
        let m = module_at(t.clone());
        assert_eq!(
            m.register(&reg, ModuleKind::Jit),
            Err(Error::Overlap),
            "{t:x?}"
        );
        model.check(&reg, &probes);
        assert!(reg.pin().find_module(2 * REGION - 0x1000).is_none());
    }
    // Adjacent ranges are fine.
    for t in [
        P + 0x3000..P + 0x3800,
        P + 0x800..P + 0x1000,
        P + 0x5200..P + 0x5300,
        P + 0x5000..P + 0x5100,
        P + 0x5400..P + 0x6000,
        P + 5 * MB2 + 0x5000..P + 5 * MB2 + 0x6000,
        2 * REGION + 0x6000..2 * REGION + 0x7000,
        3 * REGION - 0x1000..3 * REGION + 0x1000,
    ] {
        add(t, &mut model);
        model.check(&reg, &probes);
    }
}

#[test]
fn deregistering_twice() {
    let reg = Registry::new();
    let m = module_at(TEXT..TEXT + 0x100);
    let h = m.register(&reg, ModuleKind::Jit).unwrap();
    reg.deregister(h).unwrap();
    assert_eq!(reg.deregister(h), Err(Error::NotRegistered));
    assert_eq!(
        reg.deregister_eh_frame(m.eh_frame.as_ptr()),
        Err(Error::NotRegistered)
    );
    assert_eq!(reg.deregister_text(TEXT), Err(Error::NotRegistered));

    let h = m.register(&reg, ModuleKind::Jit).unwrap();
    assert_eq!(reg.deregister_text(TEXT + 1), Err(Error::NotRegistered));
    reg.deregister_eh_frame(m.eh_frame.as_ptr()).unwrap();
    assert_eq!(reg.deregister(h), Err(Error::NotRegistered));
    assert_eq!(
        reg.deregister_eh_frame(m.eh_frame.as_ptr()),
        Err(Error::NotRegistered)
    );
    assert_eq!(
        compat::deregister_frame(&reg, m.eh_frame.as_ptr()),
        Err(Error::NotRegistered)
    );
    assert!(reg.is_empty());
}

/// `len` bytes ending exactly at a page that cannot be read.
struct Guarded {
    base: *mut u8,
    page: usize,
}

impl Guarded {
    fn new() -> Self {
        // SAFETY: plain anonymous mappings.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let base = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            assert_eq!(
                libc::mprotect(base.cast::<u8>().add(page).cast(), page, libc::PROT_NONE),
                0
            );
            Guarded {
                base: base.cast(),
                page,
            }
        }
    }
    /// Copies `bytes` to end right at the guard page; returns their start.
    fn place(&self, bytes: &[u8]) -> *const u8 {
        assert!(bytes.len() <= self.page);
        // SAFETY: inside the first (writable) page.
        unsafe {
            let start = self.base.add(self.page - bytes.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), start, bytes.len());
            start
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: mapped in `new`.
        unsafe { libc::munmap(self.base.cast(), 2 * self.page) };
    }
}

#[test]
fn zero_terminated_len_stays_inside_its_limit() {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    let g = Guarded::new();
    let valid = valid_section();
    // SAFETY (all calls): `place` returns `len` readable bytes followed by a guard page.
    let p = g.place(&valid);
    assert_eq!(
        unsafe { eh_frame::zero_terminated_len(p, Some(valid.len())) },
        Ok(valid.len())
    );
    let p = g.place(&valid[..valid.len() - 4]);
    assert!(unsafe { eh_frame::zero_terminated_len(p, Some(valid.len() - 4)) }.is_err());
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..20_000 {
        let len = rng.random_range(0..64usize);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Small length fields, so that walks go further than one record.
        for i in (0..len).step_by(4) {
            if rng.random_bool(0.5) {
                bytes[i] = rng.random_range(0..16);
                for b in bytes.iter_mut().skip(i + 1).take(3) {
                    *b = 0;
                }
            }
        }
        let p = g.place(&bytes);
        match unsafe { eh_frame::zero_terminated_len(p, Some(len)) } {
            Ok(n) => assert!(n <= len && n >= 4),
            Err(e) => assert!(matches!(e, Error::BadEhFrame(_))),
        }
    }
}

/// Registers a section whose only FDE has the given instructions and walks its
/// function; the walk must end with an error after yielding the frame.
fn walk_error(instrs: Vec<(u32, I)>) -> Error {
    let m = leak_module(
        0x200,
        &[CieSpec::standard(ABSPTR)],
        &[fde(0x100, 0x40, instrs)],
    );
    let reg = Registry::new();
    m.register(&reg, ModuleKind::Jit).unwrap();
    let stack = Stack::new(0x7000_0000_0000, 64);
    let pc = m.at(0x110);
    let w = walk(
        &Unwinder::new(&reg),
        regs(pc, stack.addr(8), &[]),
        true,
        &stack.mem(),
    );
    assert_eq!(w.frames.len(), 2, "{w:#?}");
    assert_eq!(w.frames[0].as_ref().map(|f| f.pc), Ok(pc));
    w.error().expect("the walk ends with an error")
}

fn bad_cfi(e: Error) -> gimli::Error {
    match e {
        Error::BadCfi { error, .. } => error,
        e => panic!("expected BadCfi, got {e:?}"),
    }
}

#[test]
fn expression_bombs() {
    let skip_self = [0x2f, 0xfd, 0xff];
    assert_eq!(
        bad_cfi(walk_error(vec![(0, I::CfaExpression(expr(&skip_self)))])),
        gimli::Error::TooManyIterations
    );
    for rule in [
        I::Expression(RBX, expr(&skip_self)),
        I::ValExpression(RBX, expr(&skip_self)),
    ] {
        assert_eq!(
            bad_cfi(walk_error(vec![(0, rule)])),
            gimli::Error::TooManyIterations
        );
    }
    // lit1; lit1; bra back to the start: the stack grows until it is full.
    let grow = [0x31, 0x31, 0x28, 0xfb, 0xff];
    assert!(matches!(
        bad_cfi(walk_error(vec![(0, I::CfaExpression(expr(&grow)))])),
        gimli::Error::StackFull | gimli::Error::TooManyIterations
    ));
    // 1000 pushes.
    let pushes = vec![0x30; 1000];
    assert_eq!(
        bad_cfi(walk_error(vec![(0, I::CfaExpression(expr(&pushes)))])),
        gimli::Error::StackFull
    );
    // Division by zero, an unknown opcode, an empty stack at the end.
    for e in [&[0x31, 0x30, 0x1b][..], &[0xff], &[], &[0x1c]] {
        assert!(matches!(
            walk_error(vec![(0, I::CfaExpression(expr(e)))]),
            Error::BadCfi { .. }
        ));
    }
    // Reading outside the stack.
    assert!(matches!(
        walk_error(vec![(0, I::CfaExpression(expr(&[0x77, 0x80, 0x20, 0x06])))]),
        Error::BadAddress { .. }
    ));
    assert!(matches!(
        walk_error(vec![(0, I::CfaOffset(0x100000))]),
        Error::BadAddress { .. }
    ));
    // An operation that makes no sense in CFI.
    assert!(matches!(
        walk_error(vec![(0, I::CfaExpression(expr(&[0x9c])))]),
        Error::UnsupportedRule { .. } | Error::BadCfi { .. }
    ));
}

#[test]
fn cfi_program_bombs() {
    // remember_state nested deeper than the fixed storage.
    let deep: Vec<_> = (0..64).map(|_| (0, I::RememberState)).collect();
    assert_eq!(bad_cfi(walk_error(deep)), gimli::Error::StackFull);
    // restore_state with nothing remembered.
    assert_eq!(
        bad_cfi(walk_error(vec![(0, I::RestoreState)])),
        gimli::Error::PopWithEmptyStack
    );
    // More register rules than the fixed storage holds.
    let many: Vec<_> = (17..80)
        .map(|r| (0, I::Offset(gimli::Register(r), -16)))
        .collect();
    assert_eq!(
        bad_cfi(walk_error(many)),
        gimli::Error::TooManyRegisterRules
    );
}

/// Patches instruction bytes that `gimli::write` cannot produce into an FDE.
#[test]
fn malformed_instructions() {
    let patched = |pattern: &[u8], with: &[u8]| {
        let m = leak_module(
            0x200,
            &[CieSpec::standard(ABSPTR)],
            &[fde(
                0x100,
                0x40,
                vec![
                    (0, I::ArgsSize(0x55)),
                    (0, I::CfaExpression(expr(&[0x77, 0x08]))),
                ],
            )],
        );
        let mut b = m.eh_frame.to_vec();
        let at = b
            .windows(pattern.len())
            .rposition(|w| w == pattern)
            .expect("pattern");
        b[at..at + with.len()].copy_from_slice(with);
        Synth {
            text: m.text,
            eh_frame: leak(&b),
        }
    };
    let cases = [
        // An unknown DW_CFA opcode.
        (&[0x2e, 0x55][..], &[0x3f, 0x55][..]),
        // A CFA expression longer than the FDE.
        (&[0x0f, 0x02, 0x77, 0x08], &[0x0f, 0x7f]),
        // A CFA in a register that does not exist.
        (&[0x0f, 0x02, 0x77, 0x08], &[0x0c, 0x55, 0x08, 0x00]),
    ];
    for (pattern, with) in cases {
        let m = patched(pattern, with);
        let reg = Registry::new();
        m.register(&reg, ModuleKind::Jit).unwrap();
        let stack = Stack::new(0x7000_0000_0000, 64);
        let pc = m.at(0x110);
        let w = walk(
            &Unwinder::new(&reg),
            regs(pc, stack.addr(8), &[]),
            true,
            &stack.mem(),
        );
        assert_eq!(w.frames.len(), 2, "{w:#?}");
        assert!(
            matches!(
                w.error(),
                Some(Error::BadCfi { .. } | Error::UnsupportedRule { .. })
            ),
            "{pattern:x?}: {w:#?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), stack in proptest::collection::vec(any::<u8>(), 0..256)) {
        let bytes = leak(&bytes);
        register_and_use(bytes, text(), &stack);
        register_and_use(bytes, None, &stack);
        // SAFETY: `bytes.len()` readable bytes.
        if let Ok(n) = unsafe { eh_frame::zero_terminated_len(bytes.as_ptr(), Some(bytes.len())) } {
            prop_assert!(n <= bytes.len());
        }
    }

    #[test]
    fn mutated_sections_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
        stack in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut b = valid_section();
        for (at, v) in edits {
            let at = at % b.len();
            b[at] = v;
        }
        if let Some(cut) = cut {
            b.truncate(cut % (b.len() + 1));
        }
        let b = leak(&b);
        register_and_use(b, text(), &stack);
        register_and_use(b, None, &stack);
    }

    /// Garbage CFI programs (in CIEs and FDEs) behind valid headers: registration
    /// works, the walks evaluate the garbage.
    #[test]
    fn mutated_instructions_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..12),
        stack in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut b = valid_section();
        let ranges = instruction_ranges(&b);
        for (at, v) in edits {
            let r = &ranges[at % ranges.len()];
            b[r.start + (at / ranges.len()) % r.len()] = v;
        }
        let b = leak(&b);
        register_and_use(b, text(), &stack);
    }
}

/// Where the CFI programs of the valid section's records are.
fn instruction_ranges(section: &[u8]) -> Vec<Range<usize>> {
    // CIE0: no augmentation; CIE1: "zRS" with one byte of data. FDEs of CIE0: absptr
    // address and length; FDEs of CIE1: udata8 ones and an empty augmentation.
    let header = [13, 24, 18, 25, 24, 25];
    let recs = records(section);
    assert_eq!(recs.len(), header.len());
    recs.iter()
        .zip(header)
        .map(|(&(o, l), h)| o + h..o + l)
        .collect()
}
