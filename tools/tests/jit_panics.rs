//! Panics across JIT frames with clew as the process's unwinder (`clew-unwind` linked
//! statically): a panic from an `extern "C-unwind"` Rust callback propagates through
//! cranelift-jit frames whose unwind info clew registered, to a `catch_unwind` outside;
//! without the registration the same panic cannot unwind (checked in a child process).
//! And Wasmtime's own `__register_frame` calls land in clew's registry, one module per
//! `Module`, removed again when the module is dropped.

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use clew::jit::cranelift::JitUnwindInfo;

mod common;
use clew_unwinder::{ModuleKind, global};
use cranelift_jit::JITModule;

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Called by the JIT code: panics for negative inputs.
extern "C-unwind" fn callback(x: i64) -> i64 {
    if x < 0 {
        std::panic::panic_any(x);
    }
    x + 1
}

type JitFn = extern "C-unwind" fn(i64) -> i64;

/// f(x) = g(x) * 2, g(x) = callback(x) + 1, compiled by cranelift-jit.
fn compile() -> (JITModule, JitFn, JitUnwindInfo) {
    let c = common::compile_chain(&[("unwind_info", "true")], callback as *const u8);
    // SAFETY: `f` was defined with this signature and the platform calling convention.
    let f_ptr: JitFn = unsafe { std::mem::transmute(c.module.get_finalized_function(c.f)) };
    (c.module, f_ptr, c.unwind)
}

#[inline(never)]
fn call_with_drop(f: JitFn, x: i64) -> i64 {
    let _c = Counted;
    black_box(f(black_box(x)))
}

#[test]
fn panic_crosses_registered_cranelift_frames() {
    clew_unwind::install();
    std::panic::set_hook(Box::new(|_| {}));
    let (module, f, unwind) = compile();
    let reg = unwind.register(&module, "panicking jit").unwrap();
    assert_eq!(f(1), 6);
    let raised = clew_unwind::raised();
    let drops = DROPS.load(Ordering::SeqCst);
    for x in [-1i64, -7, -42] {
        let r = catch_unwind(AssertUnwindSafe(|| call_with_drop(f, x)));
        assert_eq!(
            *r.unwrap_err().downcast_ref::<i64>().unwrap(),
            x,
            "the payload crossed the JIT frames"
        );
    }
    assert_eq!(
        DROPS.load(Ordering::SeqCst) - drops,
        3,
        "the drop above the JIT frames ran"
    );
    assert_eq!(clew_unwind::raised() - raised, 3, "clew raised every panic");
    assert_eq!(
        call_with_drop(f, 2),
        8,
        "the JIT code still runs normally afterwards"
    );
    drop(reg);
    // SAFETY: no JIT code runs any more.
    unsafe { module.free_memory() };
}

/// Child-process half of the next test: the same panic with nothing registered.
#[test]
fn unregistered_child() {
    if std::env::var_os("CLEW_UNREGISTERED_CHILD").is_none() {
        return;
    }
    clew_unwind::install();
    std::panic::set_hook(Box::new(|_| {}));
    let (_module, f, _unwind) = compile();
    let _ = catch_unwind(AssertUnwindSafe(|| call_with_drop(f, -1)));
    println!("CAUGHT");
}

#[test]
fn without_registration_the_panic_cannot_cross() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unregistered_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CLEW_UNREGISTERED_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stdout.contains("CAUGHT"),
        "the unregistered panic was caught?\n{stdout}"
    );
    // Phase 1 found no handler: the walk ended (END_OF_STACK = 5) at the first JIT frame.
    assert!(
        stderr.contains("failed to initiate panic, error 5"),
        "{stderr}"
    );
}

#[test]
fn wasmtime_modules_land_in_clews_registry() {
    clew_unwind::install();
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(
        &engine,
        r#"(module (func (export "f") (result i32) i32.const 7))"#,
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))
    .unwrap();
    let (start, len) = (module.text().as_ptr() as usize, module.text().len());
    let id = {
        let g = global().pin();
        let m = g
            .find_module(start)
            .expect("Wasmtime's __register_frame reached clew");
        assert_eq!(m.kind(), ModuleKind::Jit);
        // Bounds derived from the FDEs: the functions, without the page padding.
        assert!(
            m.text().start == start && m.text().end <= start + len,
            "{:#x?} vs {start:#x}",
            m.text()
        );
        m.id()
    };
    drop(module);
    let g = global().pin();
    assert!(
        g.find_module(start).is_none_or(|m| m.id() != id),
        "deregistered on drop"
    );
}
