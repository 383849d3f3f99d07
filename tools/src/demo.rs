//! `clew demo`: the showcase. A small wasm module runs as real JIT code under Wasmtime
//! and, from a host function it calls, clew walks the whole stack: host frames, the JIT
//! frames of the wasm functions, and the native frames of the program that called them.

use anyhow::Result;
use clew_unwinder::{ModuleKind, global};
use wasmtime::{Caller, Engine, Func, Instance, Module, Store, WasmBacktrace};

use crate::jit::wasmtime::{JitRegistration, register, wasmtime_error};

/// The module: `a` → `b` → `c` → the host's `clew.backtrace`.
const WAT: &str = r#"
(module $demo
  (import "clew" "backtrace" (func $backtrace))
  (func $a (export "a") call $b)
  (func $b call $c)
  (func $c call $backtrace))
"#;

/// Compiles the module, registers its code with clew and runs it.
pub fn run() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).map_err(wasmtime_error)?;
    let registration = register(&module)?;
    println!("clew demo: walking a stack that runs through JIT code");
    println!(
        "  wasm module {:?} compiled by Wasmtime to {:#x}..{:#x}; its .eh_frame registered with clew",
        module.name().unwrap_or("?"),
        registration.text().start,
        registration.text().end
    );
    println!("  calling a → b → c → host function clew.backtrace, which prints clew's backtrace,");
    println!(
        "  innermost first: JIT frames named from Module::functions() and the image's symbols,"
    );
    println!("  native frames as module + offset from its text start (no symbolizer yet)\n");
    let mut store = Store::new(&engine, registration);
    let host = Func::wrap(&mut store, |caller: Caller<'_, JitRegistration>| {
        print_backtrace(&caller)
    });
    let instance = Instance::new(&mut store, &module, &[host.into()]).map_err(wasmtime_error)?;
    let a = instance
        .get_typed_func::<(), ()>(&mut store, "a")
        .map_err(wasmtime_error)?;
    call_wasm(&a, &mut store)
}

#[inline(never)]
fn call_wasm(a: &wasmtime::TypedFunc<(), ()>, store: &mut Store<JitRegistration>) -> Result<()> {
    a.call(store, ()).map_err(wasmtime_error)
}

/// The host function: clew's backtrace, innermost frame first.
#[inline(never)]
fn print_backtrace(caller: &Caller<'_, JitRegistration>) {
    let mut pcs = [0usize; 256];
    let n = clew_unwinder::backtrace(&mut pcs);
    let registration = caller.data();
    let guard = global().pin();
    let mut jit_functions = Vec::new();
    let (mut first_jit, mut last_jit) = (None, None);
    for (i, &pc) in pcs[..n].iter().enumerate() {
        // A return address: the call instruction is just before it.
        let lookup = pc - 1;
        let line = match guard.find_module(lookup) {
            Some(m) if m.kind() == ModuleKind::Jit => {
                first_jit.get_or_insert(i);
                last_jit = Some(i);
                let what = match (
                    registration.function_at(lookup),
                    registration.symbol_at(lookup),
                ) {
                    (Some((f, off)), _) => {
                        jit_functions.push(f.to_owned());
                        format!("wasm function {f}+{:#x}", off + 1)
                    }
                    (None, Some((s, off))) => format!("trampoline {s}+{:#x}", off + 1),
                    (None, None) => "?".to_owned(),
                };
                format!("JIT     {:<14} {what}", m.name())
            }
            Some(m) => {
                let name = m.name().rsplit('/').next().unwrap_or(m.name());
                format!("native  {name} text+{:#x}", pc - m.text().start)
            }
            None => "?       (no module)".to_owned(),
        };
        println!("  #{i:<2} {pc:#014x}  {line}");
    }
    let wasm_trace = WasmBacktrace::force_capture(caller);
    let wasm: Vec<&str> = wasm_trace
        .frames()
        .iter()
        .map(|f| f.func_name().unwrap_or("?"))
        .collect();
    println!();
    match (first_jit, last_jit) {
        (Some(first), Some(last)) => println!(
            "Frames #{first}..#{last} are JIT code Wasmtime generated at run time: no ELF file or \
             symbol table\ndescribes them. clew walked through them with the .eh_frame Wasmtime \
             put in the module's\nimage (registered by clew::jit::wasmtime::register), then on \
             through native frames\n#{}.. (which need no registration: found through \
             dl_iterate_phdr) to the thread's first frame.",
            last + 1
        ),
        _ => println!("clew saw no JIT frame: the JIT module is not registered?"),
    }
    println!(
        "Wasmtime's own WasmBacktrace (wasm frames only): {}; clew's JIT frames: {} ({}).",
        wasm.join(" ← "),
        jit_functions.join(" ← "),
        if wasm == jit_functions {
            "the same"
        } else {
            "they differ!"
        }
    );
}
