//! LSDA (`.gcc_except_table`) parsing: hand-built tables with every call-site and type
//! encoding, the LSDAs rustc emits for this very test binary, and garbage that must give
//! an error, never a panic.

use clew_unwinder::lsda::{Action, EhAction, Lsda, LsdaBases, LsdaError};
use proptest::prelude::*;

fn uleb(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn sleb(mut v: i64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        out.push(if done { b } else { b | 0x80 });
        if done {
            return;
        }
    }
}

/// Writes a call-site field in `enc` (format bits only).
fn field(enc: u8, v: u64, out: &mut Vec<u8>) {
    match enc & 0x0f {
        0x01 => uleb(v, out),
        0x02 => out.extend((v as u16).to_le_bytes()),
        0x03 => out.extend((v as u32).to_le_bytes()),
        0x04 | 0x00 => out.extend(v.to_le_bytes()),
        0x09 => sleb(v as i64, out),
        0x0a => out.extend((v as i16).to_le_bytes()),
        0x0b => out.extend((v as i32).to_le_bytes()),
        0x0c => out.extend((v as i64).to_le_bytes()),
        _ => unreachable!(),
    }
}

/// An LSDA with three call sites (cleanup, catch of type 1, none), an action table
/// (catch type 1 → next: cleanup) and a two-entry udata8 type table.
fn build(cs_enc: u8) -> Vec<u8> {
    let mut cs = Vec::new();
    for (start, len, lp, action) in [
        (0x10u64, 0x8u64, 0x100u64, 0u64),
        (0x20, 0x10, 0x200, 1),
        (0x40, 0x4, 0, 0),
    ] {
        field(cs_enc, start, &mut cs);
        field(cs_enc, len, &mut cs);
        field(cs_enc, lp, &mut cs);
        uleb(action, &mut cs);
    }
    let mut actions = Vec::new();
    sleb(1, &mut actions); // catch type 1
    sleb(1, &mut actions); // next record starts right after this field
    sleb(0, &mut actions); // cleanup
    sleb(0, &mut actions); // end of chain
    let types: Vec<u8> = [0xaaaa_u64, 0xbbbb]
        .iter()
        .rev()
        .flat_map(|t| t.to_le_bytes())
        .collect();

    let mut tail = Vec::new(); // everything after the ttype offset field
    tail.push(cs_enc);
    uleb(cs.len() as u64, &mut tail);
    tail.extend(&cs);
    tail.extend(&actions);
    tail.extend(&types);
    let mut out = vec![0xff, 0x04]; // lpstart omitted, ttype udata8
    uleb(tail.len() as u64, &mut out);
    out.extend(tail);
    out
}

#[test]
fn hand_built_tables_in_every_call_site_encoding() {
    let bases = LsdaBases {
        func_start: 0x1000,
        ..Default::default()
    };
    for enc in [0x01, 0x02, 0x03, 0x04, 0x09, 0x0a, 0x0b, 0x0c] {
        let bytes = build(enc);
        let lsda = Lsda::parse(&bytes, 0x5000, bases).unwrap();
        let sites: Vec<_> = lsda.call_sites().map(Result::unwrap).collect();
        assert_eq!(sites.len(), 3, "encoding {enc:#x}");
        assert_eq!(sites[0].start, 0x1010);
        assert_eq!(sites[0].landing_pad, Some(0x1100));
        assert_eq!(sites[2].landing_pad, None);
        assert_eq!(lsda.eh_action(0x1012).unwrap(), EhAction::Cleanup(0x1100));
        assert_eq!(lsda.eh_action(0x102f).unwrap(), EhAction::Catch(0x1200));
        assert_eq!(lsda.eh_action(0x1041).unwrap(), EhAction::None);
        assert_eq!(lsda.eh_action(0x1030).unwrap(), EhAction::Terminate);
        let chain: Vec<_> = lsda.actions(&sites[1]).map(Result::unwrap).collect();
        assert_eq!(chain, [Action::Catch(1), Action::Cleanup]);
        assert_eq!(lsda.type_entry(1, |_| None).unwrap(), 0xaaaa);
        assert_eq!(lsda.type_entry(2, |_| None).unwrap(), 0xbbbb);
    }
}

#[test]
fn pointer_applications() {
    // lpstart pcrel|sdata4 = -0x100 relative to its own address; no types; one site.
    let mut b = vec![0x1b];
    b.extend((-0x100i32).to_le_bytes());
    b.extend([0xff, 0x01]);
    let mut cs = Vec::new();
    for v in [0u64, 0x10, 0x8, 0] {
        uleb(v, &mut cs);
    }
    uleb(cs.len() as u64, &mut b);
    b.extend(cs);
    let lsda = Lsda::parse(&b, 0x9000, LsdaBases::default()).unwrap();
    // lpstart = address of the field (0x9001) - 0x100.
    assert_eq!(
        lsda.eh_action(0x8f01 + 4).unwrap(),
        EhAction::Cleanup(0x8f09)
    );

    // textrel without a text base is an error, not a guess.
    let b = [0x23, 0, 0, 0, 0, 0xff, 0x01, 0x00];
    assert_eq!(
        Lsda::parse(&b, 0, LsdaBases::default()).unwrap_err(),
        LsdaError::MissingBase(0x23)
    );
    let with_text = LsdaBases {
        text: Some(0x4000),
        ..Default::default()
    };
    assert!(Lsda::parse(&b, 0, with_text).is_ok());
    // An undefined format is rejected.
    assert_eq!(
        Lsda::parse(&[0x07, 0, 0], 0, LsdaBases::default()).unwrap_err(),
        LsdaError::BadEncoding(7)
    );
}

#[test]
fn indirect_type_entries_use_the_reader() {
    // ttype = indirect|absptr: entries are addresses of pointers to type infos.
    let mut tail = vec![0x01];
    uleb(0, &mut tail);
    tail.extend(0x7777u64.to_le_bytes());
    let mut b = vec![0xff, 0x80];
    uleb(tail.len() as u64, &mut b);
    b.extend(tail);
    let lsda = Lsda::parse(&b, 0, LsdaBases::default()).unwrap();
    assert_eq!(
        lsda.type_entry(1, |a| (a == 0x7777).then_some(0x4242))
            .unwrap(),
        0x4242
    );
    assert_eq!(
        lsda.type_entry(1, |_| None).unwrap_err(),
        LsdaError::BadIndirect(0x7777)
    );
}

#[test]
fn looping_action_chain_is_an_error() {
    let mut bytes = build(0x01);
    // Make the last action's "next" point back to itself: sleb -1 = 0x7f.
    let n = bytes.len() - 16 - 1;
    bytes[n] = 0x7f;
    let lsda = Lsda::parse(
        &bytes,
        0,
        LsdaBases {
            func_start: 0x1000,
            ..Default::default()
        },
    )
    .unwrap();
    let cs = lsda.call_site_for(0x1020).unwrap().unwrap();
    let results: Vec<_> = lsda.actions(&cs).take(10_000).collect();
    assert!(results.len() < 10_000);
    assert!(results.last().unwrap().is_err());
}

struct Noisy(u32);
impl Drop for Noisy {
    fn drop(&mut self) {
        std::hint::black_box(self.0);
    }
}

#[inline(never)]
fn may_panic(x: u32) {
    if std::hint::black_box(x) == 12345 {
        panic!("boom");
    }
}

/// A function with a cleanup landing pad: `Noisy` must be dropped if `may_panic` unwinds.
#[inline(never)]
fn with_cleanup(x: u32) -> usize {
    let _n = Noisy(x);
    may_panic(x);
    // The return address of the call above (where an unwinder would come from).
    let mut buf = [0usize; 1];
    clew_unwinder::backtrace(&mut buf);
    buf[0]
}

#[test]
fn rustc_emitted_lsda_has_a_cleanup_for_a_drop() {
    clew_unwinder::os::linux::ensure_loaded_objects();
    let pc = with_cleanup(1) as u64;
    let g = clew_unwinder::global().pin();
    let (m, e) = g
        .find_fde(pc as usize - 1)
        .expect("the test binary is registered");
    let fde = m.parse_fde(e).unwrap();
    let Some(gimli::Pointer::Direct(lsda_addr)) = fde.lsda() else {
        panic!("no LSDA for a function with a drop")
    };
    // SAFETY: the LSDA lives in this binary's mapped .gcc_except_table; 64 bytes are enough for
    // this function's small table, and parsing never reads past what its header declares.
    let bytes = unsafe { std::slice::from_raw_parts(lsda_addr as *const u8, 64) };
    let lsda = Lsda::parse(
        bytes,
        lsda_addr,
        LsdaBases {
            func_start: fde.initial_address(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(lsda.call_sites().all(|c| c.is_ok()));
    // Every call site lies inside the function.
    for cs in lsda.call_sites().map(Result::unwrap) {
        assert!(
            fde.contains(cs.start) && cs.start + cs.len <= fde.end_address(),
            "{cs:?}"
        );
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), ip in any::<u64>()) {
        if let Ok(l) = Lsda::parse(&bytes, 0x1000, LsdaBases { func_start: 0x1000, text: Some(0), data: Some(0) }) {
            let _ = l.eh_action(ip);
            for cs in l.call_sites().take(1000).flatten() {
                for a in l.actions(&cs).take(5000) { let _ = a; }
            }
            for i in 0..4 { let _ = l.type_entry(i, |_| None); }
        }
    }

    #[test]
    fn mutated_tables_never_panic(pos in 0usize..64, byte in any::<u8>(), ip in 0x1000u64..0x1100) {
        let mut b = build(0x01);
        let p = pos % b.len();
        b[p] = byte;
        if let Ok(l) = Lsda::parse(&b, 0, LsdaBases { func_start: 0x1000, ..Default::default() }) {
            let _ = l.eh_action(ip);
        }
    }
}
