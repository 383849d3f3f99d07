//! Registering and dropping a JIT module records module-registered and
//! module-deregistered events in the flight recorder (through `clew_tracer::modules`:
//! the unwinder's registry cannot call the tracer): a dump's events show when code
//! appeared and went away, with the module's id, text range and name hash.

use clew::jit;
use clew_tracer::DumpWriter;
use clew_tracer::decode::decode;
use clew_tracer::event::{EventId, name_hash};

#[test]
fn wasmtime_registrations_record_module_events() {
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, r#"(module $evented (func (export "f")))"#)
        .map_err(jit::wasmtime::wasmtime_error)
        .unwrap();
    let reg = jit::wasmtime::register(&module).unwrap();
    let (id, text) = (reg.handle().0.0, reg.text());
    drop(reg);

    let mut w = DumpWriter::new(Vec::new());
    w.events(clew_tracer::global()).unwrap();
    let (bytes, _) = w.finish();
    let d = decode(&bytes);
    let ours: Vec<_> = d
        .dump
        .events
        .iter()
        .filter(|e| e.event.args().first() == Some(&id))
        .filter(|e| {
            e.event.id == EventId::MODULE_REGISTERED || e.event.id == EventId::MODULE_DEREGISTERED
        })
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(ours[0].event.id, EventId::MODULE_REGISTERED);
    assert_eq!(ours[1].event.id, EventId::MODULE_DEREGISTERED);
    for e in ours {
        assert_eq!(
            e.event.args(),
            [
                id,
                text.start as u64,
                text.end as u64,
                name_hash(b"evented")
            ]
        );
    }
}
