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
//!
//! What is printed, as text or `--json` lines, is [`crate::report`]'s; file:line of JIT
//! frames comes from the module's own DWARF when it has some ([`crate::wasm_dwarf`]).

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clew_symbolizer::Symbolizer;
use wasmtime::{Caller, Engine, Linker, Module, Store, Val, ValType};

use crate::jit::wasmtime::{JitRegistration, register, wasmtime_error};
use crate::progress::Progress;
use crate::report::{ColorChoice, Format, Reporter};
use crate::wasm_dwarf::WasmDwarf;

/// `clew run [OPTIONS] [MODULE] [ARGS...]`
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The module (`.wat` or `.wasm`); the embedded demo when omitted.
    pub module: Option<PathBuf>,
    /// The exported function to call (default: the demo's `main`, else `_start` or `main`).
    #[arg(long)]
    pub invoke: Option<String>,
    /// The function's arguments (i32, i64, f32 or f64, as its type says).
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Write JSON lines to stdout instead of text: one object per event (`backtrace`,
    /// `result`, `trap`, `panic`, `error`), each with an "event" field, as they happen;
    /// the last line is {"event":"exit","status":N}. Frames carry pc, kind (jit/native),
    /// module, function, file, line, wasm_offset and inlined_callers.
    #[arg(long)]
    pub json: bool,
    /// Colour the text output: auto (when stdout is a terminal and NO_COLOR is unset),
    /// always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// On a trap or a host panic, write a post-mortem dump here (`clew decode FILE`).
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Serve gdb at the first stop (clew.breakpoint, a panic, a trap): `tcp:HOST:PORT`,
    /// `tcp:PORT` (loopback) or `pty` (prints the /dev/pts path).
    #[arg(long, value_name = "tcp:HOST:PORT|pty")]
    pub gdb: Option<String>,
    /// Compile with DWARF for a native debugger (Wasmtime's `Config::debug_info`): each
    /// module is registered with GDB's JIT interface (`__jit_debug_register_code`), so a
    /// gdb attached to the process (or through `--gdb`) reads its functions and lines.
    #[arg(long)]
    pub debug_info: bool,
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

/// How many wasm frames a trap's backtrace keeps (Wasmtime's default is 20).
pub const WASM_BACKTRACE_MAX_FRAMES: usize = 1000;

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
    let format = if args.json {
        Format::Json
    } else {
        Format::Text {
            color: args.color.enabled(),
        }
    };
    let status = match run_inner(args, format, out) {
        Ok(()) => 0,
        Err(f) => {
            let _ = out.flush();
            eprintln!("clew run: {}", f.message);
            if f.status == 2 {
                Reporter::new(format).error(&f.message, f.status, out);
            }
            f.status
        }
    };
    Reporter::new(format).exit(status, out);
    status
}

fn bad(e: impl std::fmt::Display) -> Failure {
    Failure {
        status: 2,
        message: e.to_string(),
    }
}

fn run_inner(args: &RunArgs, format: Format, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    let mut config = wasmtime::Config::new();
    // Wasmtime's own record of the wasm frames at a trap: deep enough for a stack
    // overflow's story (repeated frames are folded when printed).
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(WASM_BACKTRACE_MAX_FRAMES));
    config.debug_info(args.debug_info);
    let engine = Engine::new(&config).map_err(|e| bad(wasmtime_error(e)))?;
    let (module, demo, dwarf) = match &args.module {
        None => (
            Module::new(&engine, DEMO).map_err(|e| bad(wasmtime_error(e)))?,
            true,
            None,
        ),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let progress = Progress::spinner(format!(
                "compiling {} ({} KiB) with Cranelift",
                path.display(),
                bytes.len().div_ceil(1024)
            ));
            let module = Module::new(&engine, &bytes).map_err(|e| {
                bad(format!(
                    "{}: invalid module: {}",
                    path.display(),
                    one_line(&format!("{:#}", wasmtime_error(e)))
                ))
            })?;
            drop(progress);
            // A module Wasmtime accepted whose DWARF is unreadable still runs, without
            // source lines for its frames.
            let dwarf = WasmDwarf::parse(&bytes).ok().flatten().map(Arc::new);
            (module, false, dwarf)
        }
    };
    let registration = register(&module).map_err(|e| bad(format!("{e:#}")))?;
    let reporter = Reporter::new(format).with_dwarf(registration.text().start, dwarf);
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
    define_host_functions(&mut linker, &reporter).map_err(|e| bad(format!("{e:#}")))?;
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(|e| bad(format!("cannot instantiate: {:#}", wasmtime_error(e))))?;

    if demo && args.invoke.is_none() {
        reporter.note(
            "clew run: the embedded demo. main → outer → middle → inner (wasm, compiled by Wasmtime\n\
             to JIT code clew registered) calls the host's clew.backtrace, which prints the stack\n\
             innermost first: host frames, the JIT frames named by the module's symbols, and the\n\
             native frames that called them, with file:line.\n",
            out,
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
    let armed = crate::run_dump::arm(args.dump.as_deref(), |pcs| {
        PANIC_PCS.with(|p| *p.borrow_mut() = Some(pcs))
    })
    .map_err(bad)?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call(&func, &mut store, &vals, &mut results)
    }));
    match outcome {
        Ok(Ok(())) => {
            reporter.results(&name, &results, out);
            if demo && args.invoke.is_none() {
                demo_panic(&instance, &mut store, &symbolizer, &reporter, out);
            }
            Ok(())
        }
        Ok(Err(e)) => {
            report_trap(&name, &e, &reporter, out);
            armed.trap(&e, &symbolizer, &reporter, out);
            Err(Failure {
                status: 1,
                message: format!("`{name}` trapped"),
            })
        }
        Err(payload) => {
            report_panic(&name, &payload, &symbolizer, &reporter, out);
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
    reporter: &Reporter,
    out: &mut dyn std::io::Write,
) {
    let Some(explode) = instance.get_func(&mut *store, "explode") else {
        return;
    };
    reporter.note(
        "\nNow `explode` → middle_panic (wasm) calls the host's clew.panic(7), which panics; the\n\
         panic unwinds out through the JIT frames and is caught by `clew run`. The backtrace\n\
         was captured at the panic point:\n",
        out,
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call(&explode, store, &[Val::I32(7)], &mut [])
    }));
    match r {
        Err(payload) => report_panic("explode", &payload, sym, reporter, out),
        Ok(_) => reporter.note("(no panic?)", out),
    }
    reporter.note(
        "\nThe panic was caught after crossing the JIT frames; the demo ends normally.",
        out,
    );
}

fn define_host_functions(linker: &mut Linker<State>, reporter: &Reporter) -> Result<()> {
    let r = reporter.clone();
    linker
        .func_wrap("clew", "backtrace", move |caller: Caller<'_, State>| {
            let _ = caller;
            let sym = clew_symbolizer::host::current_process();
            let frames = r.frames(&capture(), &sym);
            r.backtrace("clew.backtrace", &frames, &mut std::io::stdout().lock());
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
    let r = reporter.clone();
    linker
        .func_wrap("clew", "breakpoint", move |_caller: Caller<'_, State>| {
            if crate::run_gdb::active() {
                return crate::run_gdb::breakpoint();
            }
            // No debugger attached (no `--gdb`): print and go on.
            let sym = clew_symbolizer::host::current_process();
            let frames = r.frames(&capture(), &sym);
            r.breakpoint(&frames, &mut std::io::stdout().lock());
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
    function: &str,
    payload: &Box<dyn std::any::Any + Send>,
    sym: &Symbolizer,
    reporter: &Reporter,
    out: &mut dyn std::io::Write,
) {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string payload)");
    let frames = PANIC_PCS
        .with(|p| p.borrow_mut().take())
        .map(|pcs| reporter.frames(&pcs, sym));
    reporter.panic(function, msg, frames.as_deref(), out);
}

fn report_trap(
    function: &str,
    e: &wasmtime::Error,
    reporter: &Reporter,
    out: &mut dyn std::io::Write,
) {
    let cause = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) if t.to_string().starts_with("wasm trap") => t.to_string(),
        Some(t) => format!("wasm trap: {t}"),
        None => format!("error: {e:#}"),
    };
    let frames = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| reporter.wasm_frames(bt))
        .unwrap_or_default();
    reporter.trap(function, &cause, &frames, out);
}

/// Prints one line per frame (and one per inlined caller): index, PC, JIT/native, module,
/// function, source location (plain text).
pub fn print_backtrace(pcs: &[usize], sym: &Symbolizer, out: &mut dyn std::io::Write) {
    let reporter = Reporter::new(Format::Text { color: false });
    crate::report::print_frames(&reporter.frames(pcs, sym), false, out);
}

pub use crate::report::short_name;

/// A multi-line error (the text format's parser shows the line with a caret) as one
/// line: the message, then the position from its `--> <anon>:LINE:COL` line.
fn one_line(msg: &str) -> String {
    let mut lines = msg.lines();
    let first = lines.next().unwrap_or_default().trim_end().to_owned();
    let at = lines
        .filter_map(|l| l.trim_start().strip_prefix("--> "))
        .filter_map(|l| {
            l.rsplit_once(':')
                .and_then(|(a, col)| Some((a.rsplit_once(':')?.1, col)))
        })
        .map(|(line, col)| format!(" (line {line}, column {col})"))
        .next()
        .unwrap_or_default();
    format!("{first}{at}")
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
