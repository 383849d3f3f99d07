//! Several threads record while another dumps: every event in a dump is whole (its
//! arguments agree with each other) and each ring's events keep their order.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use clew_tracer::clock::DefaultClock;
use clew_tracer::decode::decode;
use clew_tracer::{DumpWriter, EventId, Recorder};

static REC: Recorder<DefaultClock, 4, 256> = Recorder::new(DefaultClock);

fn mix(t: u64, i: u64) -> u64 {
    (t.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i).rotate_left(17)
}

#[test]
fn dumping_while_recording_never_tears() {
    let stop = AtomicBool::new(false);
    let started = AtomicUsize::new(0);
    thread::scope(|s| {
        // Three threads on their own rings, two on the shared ring.
        for t in 0..5u64 {
            let (stop, started) = (&stop, &started);
            s.spawn(move || {
                let own = if t < 3 { REC.attach(t) } else { None };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let args = [t, i, mix(t, i), !i];
                    match &own {
                        Some(p) => p.record(EventId::user(t as u16), &args),
                        None => {
                            REC.record_shared(7, t, EventId::user(t as u16), &args);
                        }
                    }
                    i += 1;
                    if i == 1000 {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        // Dump only once every producer is running.
        while started.load(Ordering::SeqCst) < 5 {
            thread::yield_now();
        }
        let mut seen = 0u64;
        for _ in 0..200 {
            let mut w = DumpWriter::new(Vec::new());
            w.events(&REC).unwrap();
            let (bytes, summary) = w.finish();
            assert_eq!(summary.error, None);
            let d = decode(&bytes);
            let problems: Vec<_> = d
                .problems
                .iter()
                .filter(|p| p.reason != clew_tracer::decode::Reason::MissingHeader)
                .collect();
            assert!(problems.is_empty(), "{problems:?}");
            let mut last = std::collections::HashMap::new();
            let mut by_ring: Vec<_> = d.dump.events.clone();
            by_ring.sort_by_key(|e| (e.ring, e.pos));
            for e in &by_ring {
                let a = e.event.args;
                assert_eq!(e.event.nargs, 4);
                let (t, i) = (a[0], a[1]);
                assert_eq!(a[2], mix(t, i), "torn event {e:?}");
                assert_eq!(a[3], !i, "torn event {e:?}");
                assert_eq!(e.event.id, EventId::user(t as u16));
                assert_eq!(e.event.task, t);
                if t < 3 {
                    assert_eq!(e.event.cpu, e.ring);
                }
                // Per ring and thread, counters only grow with the position.
                if let Some(prev) = last.insert((e.ring, t), i) {
                    assert!(i > prev, "ring {} thread {t}: {i} after {prev}", e.ring);
                }
            }
            seen += d.dump.events.len() as u64;
        }
        stop.store(true, Ordering::Relaxed);
        eprintln!("{seen} events in 200 dumps");
        assert!(seen > 1000);
    });
}

#[test]
fn global_recorder_per_thread_rings() {
    const ID: EventId = EventId::user(0x77);
    let handles: Vec<_> = (0..20u64)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..50u64 {
                    clew_tracer::trace!(ID, t, i, mix(t, i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut w = DumpWriter::new(Vec::new());
    w.events(clew_tracer::global()).unwrap();
    let (bytes, _) = w.finish();
    let d = decode(&bytes);
    let ours: Vec<_> = d.dump.events.iter().filter(|e| e.event.id == ID).collect();
    // 20 threads x 50 events; the shared ring may have overwritten some if more than
    // 16 threads were alive at once, but most are there and all are whole.
    assert!(ours.len() >= 16 * 50, "{}", ours.len());
    for e in ours {
        assert_eq!(e.event.args[2], mix(e.event.args[0], e.event.args[1]));
    }
    // Rings are released when threads exit: a new thread gets one.
    assert!(
        clew_tracer::global()
            .locals()
            .iter()
            .all(|l| !l.is_attached())
    );
}
