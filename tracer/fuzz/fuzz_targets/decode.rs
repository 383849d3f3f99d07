//! Arbitrary bytes, and a valid dump with the input spliced in, never crash the decoder,
//! and every reported problem lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = clew_tracer::decode::decode(data);
    for p in &d.problems {
        assert!(p.offset <= data.len());
        let _ = p.to_string();
    }
    // The same bytes behind a valid header: framing resynchronises after it.
    let mut w = clew_tracer::DumpWriter::new(Vec::new());
    w.header("fuzz", Default::default(), 0).unwrap();
    let (mut bytes, _) = w.finish();
    let valid = bytes.len();
    bytes.extend_from_slice(data);
    let d = clew_tracer::decode::decode(&bytes);
    assert!(d.dump.header.is_some() || valid == 0);
});
