//! `clew decode`'s host side on hostile but well-framed dumps: a real dump from
//! `clew run --dump` rewritten with valid CRCs around mutated contents (the JIT module's
//! `.eh_frame`, stack words, registers, text ranges, symbols), and dumps of random
//! parts. CRCs do not protect against a buggy or malicious writer: the re-unwind, the
//! symbolization and both renderings must still end, without panicking. A bounded
//! property test (proptest), run in CI with the other tests.

use std::path::Path;
use std::sync::OnceLock;

use clew_tracer::decode::{Dump, DumpCause};
use clew_tracer::dump::DumpWriter;
use clew_tracer::wire::{Bytes, ModuleKind, ModuleRecord, Record, TrapKind, arch};
use clew_unwinder::Symbol;
use proptest::prelude::*;

/// A real trap dump, decoded.
fn real() -> &'static Dump {
    static DUMP: OnceLock<Dump> = OnceLock::new();
    DUMP.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wat = dir.join("t.wat");
        std::fs::write(
            &wat,
            r#"(module $t
                 (func (export "main") (call $a))
                 (func $a (call $b))
                 (func $b unreachable))"#,
        )
        .unwrap();
        let dump = dir.join("t.dump");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_clew"))
            .args([
                "run",
                wat.to_str().unwrap(),
                "--dump",
                dump.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let d = clew_tracer::decode::decode(&std::fs::read(&dump).unwrap());
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert!(d.dump.modules.iter().any(|m| m.eh_frame.is_some()));
        d.dump
    })
}

/// What to change in the real dump.
#[derive(Clone, Debug)]
struct Mutation {
    eh_frame_flips: Vec<(usize, u8)>,
    stack_words: Vec<(usize, u64)>,
    regs: Vec<(usize, u64)>,
    text_shift: i64,
    eh_frame_addr_shift: i64,
    drop_symbols: bool,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<usize>(), 1u8..=255), 0..8),
        prop::collection::vec((any::<usize>(), any::<u64>()), 0..8),
        prop::collection::vec((0usize..17, any::<u64>()), 0..3),
        prop_oneof![Just(0i64), -4096i64..4096, any::<i64>()],
        prop_oneof![Just(0i64), -64i64..64, any::<i64>()],
        any::<bool>(),
    )
        .prop_map(|(e, s, r, t, a, d)| Mutation {
            eh_frame_flips: e,
            stack_words: s,
            regs: r,
            text_shift: t,
            eh_frame_addr_shift: a,
            drop_symbols: d,
        })
}

/// The dump rewritten with `m` applied.
fn rewrite(d: &Dump, m: &Mutation) -> Vec<u8> {
    let mut w = DumpWriter::new(Vec::new());
    let h = d.header.as_ref().unwrap();
    w.header(&h.producer, h.clock, h.timestamp).unwrap();
    let task = d.cause.as_ref().unwrap().task();
    if let Some(DumpCause::Trap {
        kind,
        pc,
        address,
        code,
        ..
    }) = &d.cause
    {
        w.cause_trap(*kind, *pc, *address, *code, task).unwrap();
    }
    let t = &d.tasks[0];
    let mut regs = t.registers.as_ref().unwrap().1.clone();
    for &(i, v) in &m.regs {
        regs[i] = v;
    }
    w.registers_raw(task, arch::X86_64, &regs).unwrap();
    let pcs: Vec<usize> = t.backtrace.iter().map(|&p| p as usize).collect();
    w.backtrace(task, &pcs).unwrap();
    for s in &t.stack {
        let mut bytes = s.bytes.clone();
        for &(i, v) in &m.stack_words {
            if bytes.len() >= 8 {
                let at = i % (bytes.len() - 7);
                bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        w.stack(task, s.addr, &bytes, false).unwrap();
    }
    for module in &d.modules {
        let jit = module.kind == ModuleKind::Jit;
        let shift = |v: u64, by: i64| if jit { v.wrapping_add(by as u64) } else { v };
        let text_start = shift(module.text.start, m.text_shift);
        w.record(&Record::Module(ModuleRecord {
            id: module.id,
            kind: module.kind,
            text_start,
            text_end: shift(module.text.end, m.text_shift),
            name: &module.name,
            build_id: module.build_id.as_deref().map(Bytes),
            eh_frame_addr: shift(module.eh_frame_addr, m.eh_frame_addr_shift),
            eh_frame_len: module.eh_frame_len,
            eh_frame_included: module.eh_frame.is_some(),
            symbols: module.symbols.len() as u32,
        }))
        .unwrap();
        if let Some(eh) = &module.eh_frame {
            let mut eh = eh.clone();
            for &(i, x) in &m.eh_frame_flips {
                let n = eh.len();
                eh[i % n] ^= x;
            }
            w.eh_frame(module.id, &eh).unwrap();
        }
        if !m.drop_symbols {
            let symbols: Vec<Symbol> = module
                .symbols
                .iter()
                .map(|s| Symbol {
                    name: s.name.clone(),
                    range: s.range.start as usize..s.range.end as usize,
                })
                .collect();
            w.symbols(module.id, text_start, &symbols).unwrap();
        }
    }
    w.finish().0
}

/// The report in both renderings.
fn report(bytes: &[u8]) -> clew::decode::Report {
    let r = clew::decode::report(Path::new("hostile.dump"), bytes, &[], 0);
    serde_json::to_string(&r).unwrap();
    r.write_text(&mut Vec::new()).unwrap();
    r
}

#[test]
fn the_unmutated_rewrite_still_agrees() {
    let r = report(&rewrite(
        real(),
        &Mutation {
            eh_frame_flips: vec![],
            stack_words: vec![],
            regs: vec![],
            text_shift: 0,
            eh_frame_addr_shift: 0,
            drop_symbols: false,
        },
    ));
    let t = r.task.unwrap();
    assert!(t.agrees, "{}", t.agreement);
    let names: Vec<&str> = t
        .backtrace
        .iter()
        .take(3)
        .map(|f| f.functions[0].name.as_str())
        .collect();
    assert_eq!(names, ["b", "a", "wasm-function[0]"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_contents_never_panic(m in mutation()) {
        let r = report(&rewrite(real(), &m));
        if let Some(t) = &r.task {
            prop_assert!(t.backtrace.len() <= 1024);
        }
    }

    #[test]
    fn random_parts_never_panic(
        text in (any::<u64>(), 0u64..(1 << 24)),
        eh in prop::collection::vec(any::<u8>(), 0..600),
        eh_addr in any::<u64>(),
        regs in prop::collection::vec(any::<u64>(), 0..20),
        stack in prop::collection::vec(any::<u8>(), 0..2048),
        stack_at in any::<u64>(),
        pcs in prop::collection::vec(any::<usize>(), 0..8),
        names in prop::collection::vec(("[a-z]{1,8}", any::<u32>(), any::<u16>()), 0..6),
        trap in any::<bool>(),
    ) {
        let mut w = DumpWriter::new(Vec::new());
        w.header("random", Default::default(), 0).unwrap();
        if trap {
            w.cause_trap(TrapKind::Signal(11), regs.get(16).copied().unwrap_or(0), Some(0), 1, 7).unwrap();
        } else {
            w.cause(&clew_tracer::wire::Cause::Requested { reason: "test", task: 7 }).unwrap();
        }
        w.registers_raw(7, arch::X86_64, &regs).unwrap();
        w.stack(7, stack_at, &stack, false).unwrap();
        w.backtrace(7, &pcs).unwrap();
        let (start, len) = text;
        w.record(&Record::Module(ModuleRecord {
            id: 1,
            kind: ModuleKind::Jit,
            text_start: start,
            text_end: start.wrapping_add(len),
            name: "random",
            build_id: None,
            eh_frame_addr: eh_addr,
            eh_frame_len: eh.len() as u64,
            eh_frame_included: true,
            symbols: names.len() as u32,
        })).unwrap();
        w.eh_frame(1, &eh).unwrap();
        let symbols: Vec<Symbol> = names
            .iter()
            .map(|(n, off, l)| {
                let s = (start as usize).wrapping_add(*off as usize);
                Symbol { name: n.clone(), range: s..s.wrapping_add(*l as usize) }
            })
            .collect();
        w.symbols(1, start, &symbols).unwrap();
        let bytes = w.finish().0;
        let r = report(&bytes);
        let mut text_out = Vec::new();
        r.write_text(&mut text_out).unwrap();
    }
}
