//! Damaged dumps: truncation at every record boundary and at random offsets, bit flips,
//! random and mutated input. The decoder never panics and loses no intact record (a
//! record is intact when its frame and both its delimiters are unchanged).

mod common;

use std::ops::Range;

use clew_tracer::decode::{Reason, decode, frames};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The sample's frames: span (delimiters included) and payload.
fn spans(bytes: &[u8]) -> Vec<(Range<usize>, Vec<u8>)> {
    frames(bytes)
        .map(|f| {
            let f = f.expect("the sample is intact");
            (f.offset - 1..f.offset + f.len + 1, f.payload)
        })
        .collect()
}

/// Checks that every frame of `orig` whose span misses `damaged` (a range of the
/// original input that was changed, or for insertions an empty range where bytes went
/// in) still decodes, and that decoding does not panic.
fn check(orig: &[(Range<usize>, Vec<u8>)], input: &[u8], damaged: Range<usize>) {
    let got: Vec<Vec<u8>> = frames(input)
        .filter_map(|f| f.ok())
        .map(|f| f.payload)
        .collect();
    let d = decode(input);
    let mut intact = 0;
    for (span, payload) in orig {
        let hit = if damaged.is_empty() {
            span.start < damaged.start && damaged.start < span.end
        } else {
            span.start < damaged.end && damaged.start < span.end
        };
        if !hit {
            intact += 1;
            assert!(
                got.contains(payload),
                "intact frame at {span:?} lost (damage {damaged:?})"
            );
        }
    }
    assert!(
        d.dump.records as usize >= intact,
        "{} < {intact}",
        d.dump.records
    );
    for p in &d.problems {
        assert!(p.offset <= input.len());
        let _ = p.to_string();
    }
}

#[test]
fn truncated_at_every_record_boundary() {
    let bytes = common::sample();
    let orig = spans(&bytes);
    assert!(orig.len() > 20);
    for (span, _) in &orig {
        for cut in [span.start, span.start + 1, span.end - 1, span.end] {
            let input = &bytes[..cut];
            check(&orig, input, cut..bytes.len());
            let d = decode(input);
            let whole = orig.iter().filter(|(s, _)| s.end <= cut).count();
            assert_eq!(d.dump.records as usize, whole);
            if cut < bytes.len() {
                assert!(d.problems.iter().any(|p| p.reason == Reason::MissingEnd));
            }
        }
    }
}

#[test]
fn truncated_at_random_offsets() {
    let bytes = common::sample();
    let orig = spans(&bytes);
    let mut rng = SmallRng::seed_from_u64(1);
    for _ in 0..400 {
        let cut = rng.random_range(0..=bytes.len());
        check(&orig, &bytes[..cut], cut..bytes.len());
        // A dump whose start is missing (a ring buffer of a serial log).
        check(&orig, &bytes[cut..], 0..cut);
    }
}

#[test]
fn bit_flips_cost_only_their_record() {
    let bytes = common::sample();
    let orig = spans(&bytes);
    let mut rng = SmallRng::seed_from_u64(2);
    for round in 0..600 {
        let mut input = bytes.clone();
        let at = rng.random_range(0..bytes.len());
        input[at] ^= 1 << rng.random_range(0..8);
        check(&orig, &input, at..at + 1);
        let d = decode(&input);
        let hit = orig.iter().filter(|(s, _)| s.contains(&at)).count();
        assert_eq!(d.dump.records as usize, orig.len() - hit, "round {round}");
        assert!(!d.problems.is_empty());
    }
}

#[test]
fn bursts_and_zeroed_ranges() {
    let bytes = common::sample();
    let orig = spans(&bytes);
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..300 {
        let mut input = bytes.clone();
        let a = rng.random_range(0..bytes.len());
        let b = (a + rng.random_range(1..300)).min(bytes.len());
        let zero = rng.random_bool(0.5);
        for x in &mut input[a..b] {
            *x = if zero { 0 } else { rng.random() };
        }
        check(&orig, &input, a..b);
    }
}

#[test]
fn hostile_lengths_do_not_allocate_wildly() {
    // A valid frame holding an events record that claims 4 billion events, and a
    // symbols record claiming as many: decoded without reserving for them.
    use clew_tracer::wire::{Bytes, EventsRecord, Record, SymbolsRecord};
    let mut out = Vec::new();
    for rec in [
        Record::Events(EventsRecord {
            ring: 0,
            first_pos: 0,
            count: u32::MAX,
            base_ts: 0,
            base_cpu: 0,
            base_task: 0,
            data: Bytes(&[0x01, 0x05, 0x00, 0x07]),
        }),
        Record::Symbols(SymbolsRecord {
            module: 1,
            first: 0,
            count: u32::MAX,
            data: Bytes(&[0, 4, 1, b'x']),
        }),
    ] {
        let mut payload = postcard::to_allocvec(&rec).unwrap();
        let n = payload.len();
        payload.extend_from_slice(&[0; 4]);
        let mut frame = vec![0u8; 2 * n + 16];
        let k = clew_tracer::frame::encode(&mut payload, n, &mut frame);
        out.extend_from_slice(&frame[..k]);
    }
    let d = decode(&out);
    assert_eq!(d.dump.events.len(), 1);
    assert!(
        d.problems
            .iter()
            .any(|p| matches!(p.reason, Reason::BadContents { what: "events", .. }))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes never crash the decoder.
    #[test]
    fn random_input(input in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let d = decode(&input);
        for p in &d.problems {
            prop_assert!(p.offset <= input.len());
        }
    }

    /// Random bytes with zeros sprinkled in (so that many short frames are tried).
    #[test]
    fn random_frames(input in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..4096)) {
        let _ = decode(&input);
    }

    /// A sample dump with one range replaced by other bytes (deletion, insertion,
    /// overwrite): every record outside the range survives.
    #[test]
    fn mutated_dump(
        start in 0.0f64..1.0,
        len in 0usize..400,
        fill in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let bytes = sample_once();
        let orig = spans(bytes);
        let a = ((bytes.len() as f64) * start) as usize;
        let b = (a + len).min(bytes.len());
        let mut input = bytes[..a].to_vec();
        input.extend_from_slice(&fill);
        input.extend_from_slice(&bytes[b..]);
        check(&orig, &input, a..b);
    }
}

fn sample_once() -> &'static [u8] {
    static S: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    S.get_or_init(common::sample)
}
