//! `clew run`: run a WebAssembly module under Wasmtime with clew as the registry of its
//! JIT code, so that every backtrace (`clew.backtrace`, a host panic, a trap) names the
//! JIT frames, the native frames and their source lines.
//!
//! Host functions a module may import from module `"clew"`:
//! `backtrace: [] -> []`, `panic: [i32] -> []`, `trace: [i32, i64] -> []`,
//! `breakpoint: [] -> []`.
//!
//! Exit status: 0 when the function returns, 1 after a trap or a host panic (with a
//! report), 2 for a bad module or invocation (one line naming the problem).

use std::cell::RefCell;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clew_symbolizer::{ModuleKind as SymKind, Symbolizer};
use wasmtime::{Caller, Engine, Linker, Module, Store, Val, ValType};

use crate::jit::wasmtime::{JitRegistration, register, wasmtime_error};

/// `clew run [OPTIONS] [MODULE] [ARGS...]`
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The module (`.wat` or `.wasm`); the embedded demo when omitted.
    pub module: Option<PathBuf>,
    /// The exported function to call (default: the demo's `main`, else `_start` or `main`).
    #[arg(long)]
    pub invoke: Option<String>,
    /// The function's arguments (i32, i64, f32 or f64, as its type says).
    #[arg(allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Serve gdb at the first stop (clew.breakpoint, a panic, a trap): `tcp:HOST:PORT`,
    /// `tcp:PORT` (loopback) or `pty` (prints the /dev/pts path).
    #[arg(long, value_name = "tcp:HOST:PORT|pty")]
    pub gdb: Option<String>,
}

/// The embedded demo: nested wasm calls into the host, a backtrace through them, then a
/// panic in the host that unwinds out through the same JIT frames and is caught.
const DEMO: &str = r#"
(module $demo
  (import "clew" "backtrace" (func $backtrace))
  (import "clew" "trace" (func $trace (param i32 i64)))
  (import "clew" "panic" (func $panic (param i32)))
  (func $main (export "main") (result i32)
    (call $trace (i32.const 1) (i64.const 42))
    (call $outer (i32.const 3)))
  (func $outer (param i32) (result i32)
    (call $middle (local.get 0))
    (i32.add (i32.const 1)))
  (func $middle (param i32) (result i32)
    (call $inner (local.get 0))
    (i32.mul (i32.const 2)))
  (func $inner (param i32) (result i32)
    (call $backtrace)
    (local.get 0))
  (func $explode (export "explode") (param i32)
    (call $middle_panic (local.get 0)))
  (func $middle_panic (param i32)
    (call $panic (local.get 0))))
"#;

/// A failure with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    pub status: i32,
    pub message: String,
}

/// The store's data: the module's registration with clew, alive as long as the code.
struct State {
    _registration: JitRegistration,
}

thread_local! {
    /// PCs captured by the panic hook at the panic point.
    static PANIC_PCS: RefCell<Option<Vec<usize>>> = const { RefCell::new(None) };
}

/// Runs `clew run`; returns the exit status.
pub fn run(args: &RunArgs, out: &mut dyn std::io::Write) -> i32 {
    match run_inner(args, out) {
        Ok(()) => 0,
        Err(f) => {
            let _ = out.flush();
            eprintln!("clew run: {}", f.message);
            f.status
        }
    }
}

fn bad(e: impl std::fmt::Display) -> Failure {
    Failure {
        status: 2,
        message: e.to_string(),
    }
}

fn run_inner(args: &RunArgs, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    let engine = Engine::default();
    let (module, demo) = match &args.module {
        None => (
            Module::new(&engine, DEMO).map_err(|e| bad(wasmtime_error(e)))?,
            true,
        ),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let module = Module::new(&engine, &bytes).map_err(|e| {
                bad(format!(
                    "{}: invalid module: {:#}",
                    path.display(),
                    wasmtime_error(e)
                ))
            })?;
            (module, false)
        }
    };
    let registration = register(&module).map_err(|e| bad(format!("{e:#}")))?;
    if let Some(spec) = &args.gdb {
        crate::run_gdb::setup(spec).map_err(|e| bad(format!("--gdb: {e:#}")))?;
    }
    let symbolizer = clew_symbolizer::host::current_process();
    let mut store = Store::new(
        &engine,
        State {
            _registration: registration,
        },
    );
    let mut linker = Linker::new(&engine);
    define_host_functions(&mut linker).map_err(|e| bad(format!("{e:#}")))?;
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(|e| bad(format!("cannot instantiate: {:#}", wasmtime_error(e))))?;

    if demo && args.invoke.is_none() {
        let _ = writeln!(
            out,
            "clew run: the embedded demo. main → outer → middle → inner (wasm, compiled by Wasmtime\n\
             to JIT code clew registered) calls the host's clew.backtrace, which prints the stack\n\
             innermost first: host frames, the JIT frames named by the module's symbols, and the\n\
             native frames that called them, with file:line.\n"
        );
    }
    let name = match &args.invoke {
        Some(n) => n.clone(),
        None if demo => "main".to_owned(),
        None => ["_start", "main"]
            .into_iter()
            .find(|n| instance.get_func(&mut store, n).is_some())
            .ok_or_else(|| bad("no --invoke given and no `_start` or `main` export"))?
            .to_owned(),
    };
    let func = instance
        .get_func(&mut store, &name)
        .ok_or_else(|| bad(format!("no exported function `{name}`")))?;
    let ty = func.ty(&store);
    let params: Vec<ValType> = ty.params().collect();
    if params.len() != args.args.len() {
        return Err(bad(format!(
            "`{name}` takes {} argument(s), {} given",
            params.len(),
            args.args.len()
        )));
    }
    let vals = params
        .iter()
        .zip(&args.args)
        .map(|(t, a)| parse_val(t, a))
        .collect::<Result<Vec<_>>>()
        .map_err(bad)?;
    let mut results = vec![Val::I32(0); ty.results().len()];

    install_panic_hook();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call(&func, &mut store, &vals, &mut results)
    }));
    match outcome {
        Ok(Ok(())) => {
            let shown: Vec<String> = results.iter().map(show_val).collect();
            if !shown.is_empty() {
                let _ = writeln!(out, "{}", shown.join(" "));
            }
            if demo && args.invoke.is_none() {
                demo_panic(&instance, &mut store, &symbolizer, out);
            }
            Ok(())
        }
        Ok(Err(e)) => {
            report_trap(&e, out);
            Err(Failure {
                status: 1,
                message: format!("`{name}` trapped"),
            })
        }
        Err(payload) => {
            report_panic(&payload, &symbolizer, out);
            Err(Failure {
                status: 1,
                message: format!("`{name}` panicked"),
            })
        }
    }
}

#[inline(never)]
fn call(
    func: &wasmtime::Func,
    store: &mut Store<State>,
    vals: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    func.call(store, vals, results)
}

/// The demo's second act: a host panic inside wasm frames, caught out here.
fn demo_panic(
    instance: &wasmtime::Instance,
    store: &mut Store<State>,
    sym: &Symbolizer,
    out: &mut dyn std::io::Write,
) {
    let Some(explode) = instance.get_func(&mut *store, "explode") else {
        return;
    };
    let _ = writeln!(
        out,
        "\nNow `explode` → middle_panic (wasm) calls the host's clew.panic(7), which panics; the\n\
         panic unwinds out through the JIT frames and is caught by `clew run`. The backtrace\n\
         was captured at the panic point:\n"
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call(&explode, store, &[Val::I32(7)], &mut [])
    }));
    match r {
        Err(payload) => report_panic(&payload, sym, out),
        Ok(_) => {
            let _ = writeln!(out, "(no panic?)");
        }
    }
    let _ = writeln!(
        out,
        "\nThe panic was caught after crossing the JIT frames; the demo ends normally."
    );
}

fn define_host_functions(linker: &mut Linker<State>) -> Result<()> {
    linker
        .func_wrap("clew", "backtrace", |caller: Caller<'_, State>| {
            let _ = caller;
            let sym = clew_symbolizer::host::current_process();
            let mut out = std::io::stdout().lock();
            print_backtrace(&capture(), &sym, &mut out);
        })
        .map_err(wasmtime_error)?;
    linker
        .func_wrap("clew", "panic", |code: i32| -> () {
            panic!("wasm requested panic: {code}")
        })
        .map_err(wasmtime_error)?;
    linker
        .func_wrap("clew", "trace", |id: i32, arg: i64| {
            clew_tracer::record(clew_tracer::EventId::user(id as u16), &[arg as u64]);
        })
        .map_err(wasmtime_error)?;
    linker
        .func_wrap("clew", "breakpoint", |_caller: Caller<'_, State>| {
            if crate::run_gdb::active() {
                return crate::run_gdb::breakpoint();
            }
            // No debugger attached (no `--gdb`): print and go on.
            let sym = clew_symbolizer::host::current_process();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "clew.breakpoint: no debugger attached; the stack here:"
            );
            print_backtrace(&capture(), &sym, &mut out);
        })
        .map_err(wasmtime_error)?;
    Ok(())
}

/// The PCs of the calling thread's stack, innermost first.
#[inline(never)]
fn capture() -> Vec<usize> {
    let mut pcs = vec![0usize; 512];
    let n = clew_unwinder::backtrace(&mut pcs);
    pcs.truncate(n);
    pcs
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|_| {
        crate::run_gdb::on_panic();
        let pcs = capture();
        PANIC_PCS.with(|p| *p.borrow_mut() = Some(pcs));
    }));
}

fn report_panic(
    payload: &Box<dyn std::any::Any + Send>,
    sym: &Symbolizer,
    out: &mut dyn std::io::Write,
) {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string payload)");
    let _ = writeln!(out, "panic: {msg}");
    if let Some(pcs) = PANIC_PCS.with(|p| p.borrow_mut().take()) {
        let _ = writeln!(out, "backtrace at the panic point (innermost first):");
        print_backtrace(&pcs, sym, out);
    }
}

fn report_trap(e: &wasmtime::Error, out: &mut dyn std::io::Write) {
    let cause = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) if t.to_string().starts_with("wasm trap") => t.to_string(),
        Some(t) => format!("wasm trap: {t}"),
        None => format!("error: {e:#}"),
    };
    let _ = writeln!(out, "{cause}");
    if let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
        let _ = writeln!(out, "wasm frames at the fault (innermost first):");
        for (i, f) in bt.frames().iter().enumerate() {
            let _ = writeln!(
                out,
                "  #{i:<2} JIT     {}  wasm function {}{}",
                f.module().name().unwrap_or("wasm module"),
                f.func_name()
                    .map_or_else(|| format!("#{}", f.func_index()), str::to_owned),
                f.module_offset()
                    .map(|o| format!(" at wasm offset {o:#x}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// Prints one line per frame (and one per inlined caller): index, PC, JIT/native, module,
/// function, source location.
pub fn print_backtrace(pcs: &[usize], sym: &Symbolizer, out: &mut dyn std::io::Write) {
    for (i, &pc) in pcs.iter().enumerate() {
        let lookup = (pc as u64).saturating_sub(1);
        let s = match sym.symbolize(lookup) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out, "  #{i:<2} {pc:#014x}  ?  ({e})");
                continue;
            }
        };
        let (kind, module) = match &s.module {
            Some(m) if m.kind == SymKind::Jit => ("JIT   ", m.name.to_string()),
            Some(m) if &*m.name == "/proc/self/exe" => ("native", exe_name()),
            Some(m) => (
                "native",
                m.name.rsplit('/').next().unwrap_or(&m.name).to_owned(),
            ),
            None => ("?     ", "?".to_owned()),
        };
        if s.frames.is_empty() {
            let _ = writeln!(out, "  #{i:<2} {pc:#014x}  {kind} {module}  ??");
        }
        for (k, f) in s.frames.iter().enumerate() {
            let name = f
                .function
                .as_ref()
                .map(|n| short_name(n.demangled()))
                .unwrap_or_else(|| "??".to_owned());
            let loc = match (&f.file, f.line, f.source_offset) {
                (Some(file), Some(line), _) => format!("  at {}:{line}", short_path(file)),
                (Some(file), None, _) => format!("  at {}", short_path(file)),
                (None, _, Some(off)) => format!("  at wasm offset {off:#x}"),
                _ => String::new(),
            };
            let prefix = if k == 0 {
                format!("#{i:<2} {pc:#014x}")
            } else {
                "   (inlined by)   ".to_owned()
            };
            let _ = writeln!(out, "  {prefix}  {kind} {module}  {name}{loc}");
        }
    }
}

fn exe_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "exe".to_owned())
}

/// A demangled name without generic arguments (`f<T, U>` → `f`), which in Rust can run to
/// hundreds of characters; a leading `<T as Trait>` qualification is kept.
pub fn short_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut prev = ' ';
    for c in name.chars() {
        match c {
            '<' if depth > 0 || (prev.is_alphanumeric() || prev == '_' || prev == '}') => {
                depth += 1
            }
            '>' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
        prev = c;
    }
    out
}

/// A source path without the Cargo registry's or the Rust toolchain's long prefix.
fn short_path(path: &str) -> &str {
    if let Some(i) = path.find("/registry/src/") {
        let rest = &path[i + "/registry/src/".len()..];
        return rest.split_once('/').map_or(rest, |(_, r)| r);
    }
    if let Some(rest) = path.strip_prefix("/rustc/") {
        return rest.split_once('/').map_or(rest, |(_, r)| r);
    }
    path
}

fn parse_val(t: &ValType, a: &str) -> Result<Val> {
    Ok(match t {
        ValType::I32 => Val::I32(
            a.parse::<i32>()
                .or_else(|_| a.parse::<u32>().map(|v| v as i32))
                .with_context(|| format!("`{a}` is not an i32"))?,
        ),
        ValType::I64 => Val::I64(
            a.parse::<i64>()
                .or_else(|_| a.parse::<u64>().map(|v| v as i64))
                .with_context(|| format!("`{a}` is not an i64"))?,
        ),
        ValType::F32 => Val::F32(
            a.parse::<f32>()
                .with_context(|| format!("`{a}` is not an f32"))?
                .to_bits(),
        ),
        ValType::F64 => Val::F64(
            a.parse::<f64>()
                .with_context(|| format!("`{a}` is not an f64"))?
                .to_bits(),
        ),
        other => bail!("parameters of type {other} are not supported"),
    })
}

fn show_val(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(x) => f32::from_bits(*x).to_string(),
        Val::F64(x) => f64::from_bits(*x).to_string(),
        other => format!("{other:?}"),
    }
}
