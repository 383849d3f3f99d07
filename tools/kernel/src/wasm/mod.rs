//! Wasm under Wasmtime 48's no_std runtime, inside the kernel: a module precompiled on
//! the host (for `x86_64-unknown-none`, with the settings below: they must match the
//! host's, which `Module::deserialize` checks) is loaded, registered with clew, and its
//! exports run. Host functions, as `clew run`'s: `clew.backtrace` prints the stack
//! through the JIT frames by name; `clew.panic` panics in the host function, and the
//! panic unwinds through the JIT frames and Wasmtime's frames (drops run) to the
//! kernel's catch point; `clew.trace` and `clew.breakpoint` report their calls.

mod platform;
mod register;

use alloc::sync::Arc;
use alloc::vec::Vec;

use wasmtime::{Caller, Config, Engine, Linker, Module, Store, Val, ValType, WasmBacktrace};

use crate::demo::Guard;
use crate::println;
use crate::runtime::{self, PanicTrace};

/// The Wasmtime configuration both sides share (tools/src/qemu.rs precompiles with the
/// same tunables): no virtual memory (no reservations, no guard pages, no copy-on-write
/// images), explicit bounds checks instead of signal-based traps.
fn config() -> Config {
    let mut config = Config::new();
    config
        .memory_reservation(0)
        .memory_guard_size(0)
        .memory_reservation_for_growth(0)
        .memory_init_cow(false)
        .signals_based_traps(false)
        .with_custom_code_memory(Some(Arc::new(platform::IdentityMappedCode)));
    // SAFETY: the boot code enabled SSE; the JIT code is compiled for the SSE ABI, and no
    // floats cross between it and the kernel's soft-float Rust code except through
    // Wasmtime's `ValRaw` words. The features are read from `cpuid`.
    unsafe {
        config.x86_float_abi_ok(true);
        config.detect_host_feature(platform::detect_host_feature);
    }
    config
}

/// Loads the precompiled module `cwasm` and calls each of `exports` (no arguments, or
/// zeros). Returns whether every step behaved as the demo expects: normal returns,
/// panics caught after unwinding through JIT frames, traps reported.
pub fn run(cwasm: &'static [u8], exports: &[&str]) -> bool {
    let engine = match Engine::new(&config()) {
        Ok(e) => e,
        Err(e) => {
            println!("clew-kernel: wasm: engine: {e}");
            return false;
        }
    };
    // SAFETY: the bytes were produced by `Engine::precompile_module` of the same Wasmtime
    // version on the host (`clew qemu`); deserialize checks version and settings.
    let module = match unsafe { Module::deserialize(&engine, cwasm) } {
        Ok(m) => m,
        Err(e) => {
            println!("clew-kernel: wasm: loading the module: {e:?}");
            return false;
        }
    };
    let name = module.name().unwrap_or("wasm module");
    let handle = match register::register(&module, name) {
        Ok(h) => h,
        Err(e) => {
            println!("clew-kernel: wasm: registering with clew: {e}");
            return false;
        }
    };
    let text = module.text().as_ptr_range();
    println!(
        "clew-kernel: wasm: module {name:?} loaded, {} functions at {:#x}..{:#x}, registered with clew",
        module.functions().len(),
        text.start as usize,
        text.end as usize
    );

    let mut linker = Linker::<()>::new(&engine);
    if let Err(e) = link_host_functions(&mut linker) {
        println!("clew-kernel: wasm: linking the host functions: {e:?}");
        return false;
    }
    // The first panic from here on writes the post-mortem dump (JIT modules included).
    crate::dump::arm();
    let mut ok = true;
    for export in exports {
        // A store (and instance) per call: a panic unwound through Wasmtime's frames
        // leaves the store's record of the last wasm entry and exit stale (see below).
        let mut store = Store::new(&engine, ());
        let instance = match linker.instantiate(&mut store, &module) {
            Ok(i) => i,
            Err(e) => {
                println!("clew-kernel: wasm: instantiating: {e:?}");
                return false;
            }
        };
        let Some(func) = instance.get_func(&mut store, export) else {
            println!("clew-kernel: wasm: no exported function {export:?}");
            ok = false;
            continue;
        };
        let ty = func.ty(&store);
        let params: Vec<Val> = ty.params().map(|t| zero(&t)).collect();
        let mut results: Vec<Val> = ty.results().map(|t| zero(&t)).collect();
        println!("clew-kernel: wasm: calling {export}");
        let tls = platform::tls_snapshot();
        let outcome = clew_unwinder::panic::catch_unwind(|| {
            // Dropped while the panic unwinds out of the JIT frames, on the kernel's side.
            let _guard = Guard("the kernel's call into wasm");
            func.call(&mut store, &params, &mut results)
        });
        match outcome {
            Ok(Ok(())) => println!("clew-kernel: wasm: {export} returned {results:?}"),
            Ok(Err(e)) => {
                println!("clew-kernel: wasm: {export} trapped: {}", e.root_cause());
                match e.downcast_ref::<WasmBacktrace>() {
                    Some(bt) => {
                        println!("clew-kernel: wasm: trap backtrace (Wasmtime's):");
                        for line in alloc::format!("{bt}").lines() {
                            println!("  {line}");
                        }
                    }
                    None => println!("clew-kernel: wasm: (no wasm backtrace)"),
                }
            }
            Err(header) => {
                // Wasmtime calls JIT code through `extern "C"` function pointers, which
                // rustc assumes never unwind: the frames making those calls have no
                // cleanup for them, so the unwind skipped Wasmtime's own guards (its TLS
                // activation, the store's last entry/exit frames). Put the TLS back; the
                // store is dropped below. (A kernel would end the task's store.)
                platform::tls_restore(tls);
                // SAFETY: the header comes from the catch point.
                let msg = unsafe { runtime::payload(header) }.map(|p| p.message());
                println!(
                    "clew-kernel: wasm: caught panic from {export}: {:?}",
                    msg.unwrap_or("<foreign exception>")
                );
                println!("clew-kernel: wasm: backtrace of the panic:");
                crate::backtrace::print_trace(runtime::last_trace());
                ok &= msg.is_some();
            }
        }
        drop(store);
    }
    // Keep the module registered as long as its code can run: until here.
    let _ = clew_unwinder::global().deregister(handle);
    ok
}

fn zero(t: &ValType) -> Val {
    match t {
        ValType::I64 => Val::I64(0),
        ValType::F32 => Val::F32(0),
        ValType::F64 => Val::F64(0),
        _ => Val::I32(0),
    }
}

fn link_host_functions(linker: &mut Linker<()>) -> wasmtime::Result<()> {
    linker.func_wrap("clew", "backtrace", |_: Caller<'_, ()>| {
        let mut trace = PanicTrace::new();
        runtime::capture(&mut trace);
        println!(
            "clew-kernel: clew.backtrace from wasm ({} frames):",
            trace.len
        );
        crate::backtrace::print_trace(&trace);
    })?;
    linker.func_wrap("clew", "panic", |_: Caller<'_, ()>, code: i32| {
        // Dropped first, in the host function's own frame.
        let _guard = Guard("the clew.panic host function");
        if core::hint::black_box(true) {
            panic!("clew.panic({code}) called from wasm");
        }
    })?;
    linker.func_wrap("clew", "trace", |_: Caller<'_, ()>, id: i32, value: i64| {
        println!("clew-kernel: clew.trace(id {id}, value {value})");
        clew_tracer::record(clew_tracer::EventId::user(id as u16), &[value as u64]);
    })?;
    linker.func_wrap("clew", "breakpoint", |_: Caller<'_, ()>| {
        if crate::gdb::active() {
            println!("clew-kernel: clew.breakpoint: stopping in gdb");
            crate::gdb::breakpoint();
        } else {
            println!("clew-kernel: clew.breakpoint: no debugger attached, continuing");
        }
    })?;
    Ok(())
}
