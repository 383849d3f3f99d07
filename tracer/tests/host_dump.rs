//! Host dumps of the calling thread, and the panic hook writing one to a file.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use clew_tracer::decode::{DumpCause, decode};
use clew_tracer::dump::host::{
    ThreadDumpOptions, Why, install_panic_hook, prepare, write_thread_dump,
};
use clew_tracer::sink::FileSink;
use clew_tracer::wire::ModuleKind;
use clew_tracer::{EventId, trace};

#[inline(never)]
fn dump_here() -> Vec<u8> {
    write_thread_dump(
        Vec::new(),
        Why::Requested("test"),
        &ThreadDumpOptions::default(),
    )
    .0
}

#[test]
fn thread_dump_has_registers_stack_backtrace_and_modules() {
    prepare();
    trace!(EventId::user(9), 1, 2);
    let bytes = dump_here();
    let d = decode(&bytes);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    let dump = d.dump;
    let task = match dump.cause.as_ref().unwrap() {
        DumpCause::Requested { reason, task } => {
            assert_eq!(reason, "test");
            *task
        }
        c => panic!("{c:?}"),
    };
    let t = &dump.tasks[0];
    assert_eq!(t.task, task);
    let (arch, regs) = t.registers.as_ref().unwrap();
    assert_eq!(*arch, 62);
    let sp = regs[7];
    assert_eq!(
        t.stack[0].addr, sp,
        "the stack copy starts at the stack pointer"
    );
    assert!(t.stack[0].bytes.len() > 256);
    assert!(t.backtrace.len() > 3, "{:?}", t.backtrace);
    // The backtrace's PCs lie in the program's (static) modules.
    let pc = t.backtrace[1];
    assert!(
        dump.modules
            .iter()
            .any(|m| m.kind == ModuleKind::Static && m.text.contains(&pc)),
        "{pc:#x} in no module"
    );
    assert!(
        dump.events
            .iter()
            .any(|e| e.event.id == EventId::user(9) && e.event.args() == [1, 2])
    );
    let h = dump.header.unwrap();
    assert!(h.clock.hz > 0, "TSC calibrated by prepare()");
    assert!(h.wall_ns.is_some());
}

#[test]
fn panic_hook_writes_a_dump() {
    let path = std::env::temp_dir().join(format!("clew-tracer-hook-{}.dump", std::process::id()));
    install_panic_hook(
        FileSink::create(&path).unwrap(),
        ThreadDumpOptions::default(),
    );
    let r = std::thread::spawn(|| {
        trace!(EventId::user(1), 5);
        panic!("boom {}", 42);
    })
    .join();
    assert!(r.is_err());
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let d = decode(&bytes);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    match d.dump.cause.unwrap() {
        DumpCause::Panic { message, file, .. } => {
            assert_eq!(message, "boom 42");
            assert!(file.ends_with("host_dump.rs"));
        }
        c => panic!("{c:?}"),
    }
    assert!(d.dump.events.iter().any(|e| e.event.id == EventId::PANIC));
}
