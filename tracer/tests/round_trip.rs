//! A full dump decodes to what was written.

mod common;

use clew_tracer::clock::NoClock;
use clew_tracer::decode::{DumpCause, Reason, decode, frames};
use clew_tracer::wire::{ModuleKind, TrapKind};
use clew_tracer::{EventId, SliceSink};
use common::*;

#[test]
fn everything_round_trips() {
    let reg = sample_registry();
    let rec = SmallRecorder::new(NoClock);
    let held = fill(&rec);
    let (bytes, summary) = write_sample(Vec::new(), &reg, &rec);
    assert_eq!(summary.error, None);
    assert_eq!(summary.bytes as usize, bytes.len());
    assert_eq!(summary.events, held);

    let d = decode(&bytes);
    assert!(d.problems.is_empty(), "{:#?}", d.problems);
    let dump = d.dump;
    assert_eq!(dump.records, summary.records);
    let h = dump.header.as_ref().unwrap();
    assert_eq!(h.producer, "sample 1.0");
    assert_eq!((h.major, h.arch, h.pointer_width), (1, 62, 8));
    assert_eq!(h.timestamp, 99_999);
    assert_eq!(h.clock.hz, 2_600_000_000);

    match dump.cause.as_ref().unwrap() {
        DumpCause::Panic {
            message,
            file,
            line,
            task,
            truncated,
            ..
        } => {
            assert_eq!(
                message,
                "index out of bounds: the len is 3 but the index is 7"
            );
            assert!(file.ends_with("common/mod.rs"), "{file}");
            assert!(*line > 0);
            assert_eq!(*task, TASK);
            assert!(!truncated);
        }
        c => panic!("{c:?}"),
    }

    assert_eq!(dump.modules.len(), 2);
    let stat = &dump.modules[0];
    assert_eq!(stat.kind, ModuleKind::Static);
    assert_eq!(stat.name, "/usr/bin/app");
    assert_eq!(stat.text, STATIC_TEXT);
    assert!(
        stat.eh_frame.is_none(),
        "static modules' CFI is on the host"
    );
    let jit = &dump.modules[1];
    assert_eq!(jit.kind, ModuleKind::Jit);
    assert_eq!(jit.text, JIT_TEXT);
    let mut eh = None;
    reg.for_each_module(|m| {
        if m.name().starts_with("wasm") {
            eh = Some(m.eh_frame().to_vec());
        }
    });
    assert_eq!(jit.eh_frame.as_deref(), eh.as_deref());
    assert!(jit.eh_frame.as_ref().unwrap().len() > 960, "several chunks");
    assert_eq!(jit.symbols.len(), 300);
    assert_eq!(jit.symbols_written, 300);
    let s = jit.symbol(0x5000_0000 + 17 * 0x30 + 4).unwrap();
    assert_eq!(
        s.name,
        "wasm[0]::function[17]::some_rather_long_function_name_17"
    );
    assert_eq!(s.range.end - s.range.start, 0x28);

    assert_eq!(dump.tasks.len(), 1);
    let t = &dump.tasks[0];
    assert_eq!(t.task, TASK);
    assert_eq!(t.registers, Some((62, regs().to_vec())));
    assert_eq!(t.stack.len(), 1);
    assert_eq!(t.stack[0].addr, STACK_BASE);
    assert_eq!(t.stack[0].bytes, stack_bytes());
    assert!(t.stack_info.unwrap().truncated);
    assert_eq!(
        t.backtrace,
        pcs().iter().map(|&p| p as u64).collect::<Vec<_>>()
    );

    assert_eq!(dump.rings.len(), 3);
    assert_eq!(dump.events.len() as u64, held);
    // Newest last, and every event as recorded.
    assert!(
        dump.events
            .windows(2)
            .all(|w| w[0].event.ts <= w[1].event.ts)
    );
    for e in &dump.events {
        match e.event.id {
            id if id == EventId::user(1) => {
                let i = e.event.args[0];
                assert_eq!(e.event.args(), &[i, i % 7]);
                assert_eq!(e.event.ts, 1000 + i * 37);
                assert_eq!((e.ring, e.pos, e.event.task), (0, i, 100));
            }
            id if id == EventId::user(2) => {
                let i = e.event.args[0] / 1000;
                assert_eq!(e.event.args(), &[i * 1000, 3, 0xdead_beef]);
                assert_eq!((e.ring, e.pos, e.event.task), (1, i / 2, 200));
            }
            EventId::BREAKPOINT => {
                assert_eq!(e.ring, 3);
                assert_eq!(e.event.cpu, 5);
                assert_eq!(e.event.task, 300 + e.pos);
            }
            id => panic!("{id:?}"),
        }
    }
    assert_eq!(dump.notes, ["a note"]);
    assert_eq!(dump.end.unwrap().records + 1, dump.records);
}

#[test]
fn events_are_compact() {
    // A typical stream: one thread's user events with small arguments, ~1 µs apart on a
    // 2.6 GHz TSC.
    let rec = SmallRecorder::new(NoClock);
    let p = rec.attach(77).unwrap();
    let mut ts = 1u64 << 40;
    for i in 0..256u64 {
        ts += 2000 + (i * 7919) % 1200;
        p.record_at(ts, EventId::user((i % 5) as u16), &[i * 3, i & 0xff]);
    }
    drop(p);
    let mut w = clew_tracer::DumpWriter::new(Vec::new());
    let before = w.summary().bytes;
    w.events(&rec).unwrap();
    let bytes = w.summary().bytes - before;
    let per = bytes as f64 / 256.0;
    assert!(per <= 12.0, "{per} bytes per event");
}

#[test]
fn full_region_keeps_a_decodable_prefix() {
    let reg = sample_registry();
    let rec = SmallRecorder::new(NoClock);
    fill(&rec);
    let mut region = vec![0u8; 6000];
    let (sink, summary) = write_sample(SliceSink::new(&mut region), &reg, &rec);
    assert_eq!(sink.len(), 6000);
    assert!(summary.error.is_some());
    let d = decode(&region);
    assert!(d.dump.header.is_some());
    assert!(d.dump.cause.is_some());
    assert!(d.problems.iter().any(|p| p.reason == Reason::Truncated));
    assert!(d.problems.iter().any(|p| p.reason == Reason::MissingEnd));
    let intact = frames(&region).filter(|f| f.is_ok()).count();
    assert_eq!(d.dump.records as usize, intact);
}

#[test]
fn trap_cause() {
    let mut w = clew_tracer::DumpWriter::new(Vec::new());
    w.header("t", Default::default(), 0).unwrap();
    w.cause_trap(TrapKind::Exception(14), 0x1234, Some(0xdead), 2, 9)
        .unwrap();
    let (bytes, _) = w.finish();
    let d = decode(&bytes);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(
        d.dump.cause,
        Some(DumpCause::Trap {
            kind: TrapKind::Exception(14),
            pc: 0x1234,
            address: Some(0xdead),
            code: 2,
            task: 9
        })
    );
    assert_eq!(TrapKind::Exception(14).name(), "page fault");
}

#[test]
fn source_offsets_round_trip_across_records() {
    use clew_tracer::DumpWriter;
    use clew_tracer::wire::{Bytes, ModuleRecord, Record};
    let text = 0x7f00_0000_0000u64;
    // Enough entries for several records; some addresses without a source position.
    let map: Vec<(usize, Option<u32>)> = (0..2000u32)
        .map(|i| {
            let addr = (text + u64::from(i) * 3) as usize;
            (addr, (i % 7 != 0).then_some(i * 11))
        })
        .collect();
    let mut w = DumpWriter::new(Vec::new());
    w.header("t", Default::default(), 0).unwrap();
    w.record(&Record::Module(ModuleRecord {
        id: 4,
        kind: ModuleKind::Jit,
        text_start: text,
        text_end: text + 0x10000,
        name: "m",
        build_id: None::<Bytes<'_>>,
        eh_frame_addr: 0,
        eh_frame_len: 0,
        eh_frame_included: false,
        symbols: 0,
    }))
    .unwrap();
    w.source_offsets(4, text, &map).unwrap();
    let (bytes, summary) = w.finish();
    assert!(summary.records > 4, "{summary:?}");
    let d = decode(&bytes);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    let m = &d.dump.modules[0];
    let want: Vec<(u64, Option<u32>)> = map.iter().map(|&(a, o)| (a as u64, o)).collect();
    assert_eq!(m.source_offsets, want);
    assert_eq!(m.source_offset(text + 3 * 8 + 1), Some(8 * 11));
    assert_eq!(m.source_offset(text + 1), None);
}
