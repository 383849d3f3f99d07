//! Tracer benchmarks, with their anchors in the same run:
//!
//! - `record/*`: one event (a user id, two arguments) per iteration. `producer_tsc`:
//!   a thread's own ring through its `Producer`, stamped with the TSC; `producer_given_ts`:
//!   the same with the caller's timestamp (the ring write alone); `trace_macro_tsc`: the
//!   `trace!` macro on the global recorder (thread-local ring lookup included);
//!   `shared_tsc` / `shared_given_ts`: the shared multi-producer ring, uncontended;
//!   `in_context_*`: an event between pieces of dependent arithmetic, and the
//!   arithmetic alone (the difference is what recording adds to working code). Anchors: `anchor_rdtsc`
//!   (the clock alone) and `anchor_plain_array` (a plain per-thread array store of the
//!   same 64-byte event, no seqlock).
//! - `dump/*`: writing a recorder's 4096 events (4 rings x 1024) to a memory region,
//!   per event (throughput in elements); bytes per event are printed. Anchor:
//!   `anchor_postcard_event`, postcard encoding each event as a plain struct with a
//!   delta timestamp (no framing). `decode_events`: the host decoder on that dump.
//!
//! Run with `cargo bench -p clew-tracer --bench tracer`; see BENCHMARKS-tracer.md.

use std::hint::black_box;
use std::time::Duration;

use clew_tracer::clock::{Clock, DefaultClock, NoClock};
use clew_tracer::{DumpWriter, EventId, Recorder, SliceSink};
use criterion::{Criterion, Throughput};
use serde::Serialize;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

static REC: Recorder<DefaultClock, 4, 1024> = Recorder::new(DefaultClock);

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let p = REC.attach(1).expect("a free ring");
    const ID: EventId = EventId::user(1);
    let mut i = 0u64;
    g.bench_function("producer_tsc", |b| {
        b.iter(|| {
            i += 1;
            p.record(ID, &[black_box(i), 7]);
        })
    });
    g.bench_function("producer_given_ts", |b| {
        b.iter(|| {
            i += 1;
            p.record_at(black_box(i * 3), ID, &[black_box(i), 7]);
        })
    });
    drop(p);
    g.bench_function("trace_macro_tsc", |b| {
        b.iter(|| {
            i += 1;
            clew_tracer::trace!(ID, black_box(i), 7);
        })
    });
    g.bench_function("shared_tsc", |b| {
        b.iter(|| {
            i += 1;
            REC.record_shared(0, 1, ID, &[black_box(i), 7]);
        })
    });
    g.bench_function("shared_given_ts", |b| {
        b.iter(|| {
            i += 1;
            REC.record_shared_at(black_box(i * 3), 0, 1, ID, &[black_box(i), 7]);
        })
    });
    // In context: the same event between two pieces of dependent arithmetic (~40
    // cycles), minus that arithmetic alone: what recording adds to code that does work.
    let work = |x: u64| {
        let mut y = x;
        for _ in 0..10 {
            y = black_box(y)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(7);
        }
        y
    };
    let p = REC.attach(2).expect("a free ring");
    g.bench_function("in_context_baseline", |b| {
        b.iter(|| {
            i = work(i);
        })
    });
    g.bench_function("in_context_producer_tsc", |b| {
        b.iter(|| {
            i = work(i);
            p.record(ID, &[i, 7]);
        })
    });
    drop(p);
    g.bench_function("anchor_rdtsc", |b| b.iter(|| black_box(DefaultClock.now())));
    // The anchor: a plain per-thread array of 64-byte events, no seqlock.
    #[derive(Clone, Copy, Default)]
    #[repr(C, align(64))]
    struct Plain {
        ts: u64,
        meta: u64,
        task: u64,
        args: [u64; 4],
    }
    let mut arr = vec![Plain::default(); 1024];
    let mut head = 0usize;
    g.bench_function("anchor_plain_array", |b| {
        b.iter(|| {
            i += 1;
            let s = &mut arr[head & 1023];
            head += 1;
            *s = Plain {
                ts: black_box(i * 3),
                meta: 0x101 | (2 << 16),
                task: 1,
                args: [black_box(i), 7, 0, 0],
            };
        })
    });
    black_box(&arr);
    g.finish();
}

/// 4 rings x 1024 events: user events with two or three small arguments, ~1 µs apart
/// on a 2.6 GHz TSC (2000–3200 ticks).
fn filled() -> &'static Recorder<NoClock, 4, 1024> {
    let rec = Box::leak(Box::new(Recorder::<NoClock, 4, 1024>::new(NoClock)));
    for r in 0..4u64 {
        let p = rec.attach(1000 + r).unwrap();
        let mut ts = 1u64 << 40;
        for i in 0..1024u64 {
            ts += 2000 + (i * 7919) % 1200;
            let id = EventId::user((i % 6) as u16);
            if i % 3 == 0 {
                p.record_at(ts, id, &[i * 3, i & 0xff, 42]);
            } else {
                p.record_at(ts, id, &[i * 3, r]);
            }
        }
        std::mem::forget(p);
    }
    rec
}

fn dump(c: &mut Criterion) {
    let rec = filled();
    let mut region = vec![0u8; 1 << 20];
    let n = 4096u64;
    let bytes = {
        let mut w = DumpWriter::new(SliceSink::new(&mut region));
        w.events(rec).unwrap();
        w.summary().bytes
    };
    eprintln!(
        "dump/events: {bytes} bytes for {n} events = {:.2} bytes/event (framing included)",
        bytes as f64 / n as f64
    );
    let mut g = c.benchmark_group("dump");
    g.throughput(Throughput::Elements(n));
    g.bench_function("encode_events", |b| {
        b.iter(|| {
            let mut w = DumpWriter::new(SliceSink::new(&mut region));
            black_box(w.events(rec).unwrap());
        })
    });

    // The anchor: postcard, one plain struct per event, delta timestamp.
    #[derive(Serialize)]
    struct PlainEvent<'a> {
        dt: u64,
        cpu: u32,
        task: u64,
        id: u16,
        args: &'a [u64],
    }
    let events: Vec<_> = (0..4u32)
        .flat_map(|r| {
            let ring = rec.locals()[r as usize].ring();
            (0..1024).map(move |p| ring.get(p).unwrap())
        })
        .collect();
    let mut out = vec![0u8; 64];
    let anchor_bytes: usize = {
        let mut prev = 0;
        events
            .iter()
            .map(|e| {
                let ev = PlainEvent {
                    dt: e.ts.wrapping_sub(prev),
                    cpu: e.cpu,
                    task: e.task,
                    id: e.id.0,
                    args: e.args(),
                };
                prev = e.ts;
                postcard::to_slice(&ev, &mut out).unwrap().len()
            })
            .sum()
    };
    eprintln!(
        "dump/anchor_postcard_event: {:.2} bytes/event (no framing)",
        anchor_bytes as f64 / n as f64
    );
    g.bench_function("anchor_postcard_event", |b| {
        b.iter(|| {
            let mut prev = 0;
            let mut total = 0;
            for e in &events {
                let ev = PlainEvent {
                    dt: e.ts.wrapping_sub(prev),
                    cpu: e.cpu,
                    task: e.task,
                    id: e.id.0,
                    args: e.args(),
                };
                prev = e.ts;
                total += postcard::to_slice(&ev, &mut out).unwrap().len();
            }
            black_box(total)
        })
    });
    let dumped = {
        let mut w = DumpWriter::new(Vec::new());
        w.events(rec).unwrap();
        w.finish().0
    };
    g.bench_function("decode_events", |b| {
        b.iter(|| black_box(clew_tracer::decode::decode(&dumped).dump.events.len()))
    });
    g.finish();
}

fn main() {
    let mut c = config();
    record(&mut c);
    dump(&mut c);
    c.final_summary();
}
