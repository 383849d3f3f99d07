//! clew's backtrace through real JIT code: Wasmtime modules (registered by
//! `clew::jit::wasmtime::register`) and cranelift-jit functions (registered by
//! `clew::jit::cranelift::JitUnwindInfo`), checked against Wasmtime's own
//! `WasmBacktrace` and libgcc's `_Unwind_Backtrace`.

use std::cell::RefCell;
use std::ffi::c_void;
use std::hint::black_box;

use clew::jit;

mod common;
use clew::jit::wasmtime::wasmtime_error;
use clew_unwinder::{ModuleKind, global};
use wasmtime::{Caller, Engine, Func, Instance, Module, Store, TypedFunc, WasmBacktrace};

// ---- reference unwinder and helpers ----

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> i32;

unsafe extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

const URC_END_OF_STACK: i32 = 5;

extern "C" fn push_ip(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Vec` passed by `libgcc_trace`; `ctx` is libgcc's live context.
    let out = unsafe { &mut *(arg as *mut Vec<usize>) };
    out.push(unsafe { _Unwind_GetIP(ctx) });
    0
}

/// libgcc's backtrace from here (entry 0: the return address into this function) and
/// its return code. The outermost frame's undefined return address (a trailing 0) is
/// dropped.
#[inline(never)]
fn libgcc_trace() -> (Vec<usize>, i32) {
    let mut out = Vec::with_capacity(256);
    // SAFETY: the callback matches libgcc's `_Unwind_Trace_Fn`.
    let rc = unsafe { _Unwind_Backtrace(push_ip, (&raw mut out).cast()) };
    while out.last() == Some(&0) {
        out.pop();
    }
    black_box((out, rc))
}

/// clew's backtrace from here: entry 0 is the return address into this function.
#[inline(never)]
fn clew_trace() -> Vec<usize> {
    let mut buf = vec![0usize; 256];
    let n = clew_unwinder::backtrace(&mut buf);
    buf.truncate(n);
    black_box(buf)
}

/// Whether the return address `pc` lies in the function starting at `function`: the
/// FDE covering its call instruction (from clew's registry) starts there.
fn returns_into(pc: usize, function: usize) -> bool {
    let guard = global().pin();
    guard
        .find_fde(pc - 1)
        .is_some_and(|(m, fde)| m.text().start + fde.start as usize == function)
}

/// The first index from `from` on whose return address lies in `function`.
fn position(pcs: &[usize], from: usize, function: usize) -> Option<usize> {
    pcs.iter()
        .skip(from)
        .position(|&pc| returns_into(pc, function))
        .map(|i| i + from)
}

// ---- (a) Wasmtime ----

const WAT: &str = r#"
(module $m
  (import "env" "host" (func $host))
  (func $a (export "a") call $b)
  (func $b call $c)
  (func $c call $host))
"#;

#[derive(Default)]
struct Captured {
    clew: Vec<usize>,
    libgcc: Vec<usize>,
    libgcc_rc: i32,
    wasm: Vec<String>,
}

/// What the host function records: both backtraces, taken from sibling calls so that
/// they agree from entry 2 (the return address into the host function) on.
#[inline(never)]
fn capture(caller: &Caller<'_, Captured>) -> Captured {
    let clew = clew_trace();
    let (libgcc, libgcc_rc) = libgcc_trace();
    let wasm = WasmBacktrace::force_capture(caller)
        .frames()
        .iter()
        .map(|f| f.func_name().unwrap_or("?").to_owned())
        .collect();
    black_box(Captured {
        clew,
        libgcc,
        libgcc_rc,
        wasm,
    })
}

#[inline(never)]
fn call_a(a: &TypedFunc<(), ()>, store: &mut Store<Captured>) -> Captured {
    a.call(&mut *store, ()).map_err(wasmtime_error).unwrap();
    black_box(std::mem::take(store.data_mut()))
}

/// The JIT frames of a trace: their indices, which must form one run.
fn jit_run(pcs: &[usize], text: &std::ops::Range<usize>) -> std::ops::Range<usize> {
    let idx: Vec<usize> = (0..pcs.len())
        .filter(|&i| text.contains(&(pcs[i] - 1)))
        .collect();
    assert!(!idx.is_empty(), "no JIT frame in {pcs:#x?}");
    let run = idx[0]..idx[idx.len() - 1] + 1;
    assert_eq!(idx.len(), run.len(), "JIT frames not contiguous: {idx:?}");
    run
}

/// Wasmtime: clew walks host → trampoline → c → b → a → trampoline → host frames,
/// exactly as libgcc (which Wasmtime registered the same `.eh_frame` with) does, in the
/// order of Wasmtime's own `WasmBacktrace`; dropping the registration takes it out of the
/// registry, and clew's walk then ends at the first JIT frame.
#[test]
fn wasmtime_frames() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).map_err(wasmtime_error).unwrap();
    let reg = jit::wasmtime::register(&module).unwrap();
    let text =
        module.text().as_ptr() as usize..module.text().as_ptr() as usize + module.text().len();
    assert_eq!(reg.text(), text);
    assert!(reg.eh_frame().start >= module.image_range().start as usize);
    assert!(reg.eh_frame().end <= module.image_range().end as usize);
    let names: Vec<&str> = reg.functions().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    {
        let guard = global().pin();
        let m = guard.find_module(text.start).expect("registered");
        assert_eq!(
            (m.id(), m.kind(), m.name()),
            (reg.handle().0, ModuleKind::Jit, "m")
        );
    }

    let mut store = Store::new(&engine, Captured::default());
    let host = Func::wrap(&mut store, |mut caller: Caller<'_, Captured>| {
        let c = capture(&caller);
        *caller.data_mut() = c;
    });
    let instance = Instance::new(&mut store, &module, &[host.into()])
        .map_err(wasmtime_error)
        .unwrap();
    let a = instance
        .get_typed_func::<(), ()>(&mut store, "a")
        .map_err(wasmtime_error)
        .unwrap();
    let t = call_a(&a, &mut store);

    // Wasmtime's view: the wasm frames, innermost first.
    assert_eq!(t.wasm, ["c", "b", "a"]);

    // clew's JIT frames: the exit trampoline, c, b, a, the entry trampoline.
    let run = jit_run(&t.clew, &text);
    let jit_functions: Vec<&str> = t.clew[run.clone()]
        .iter()
        .filter_map(|&pc| reg.function_at(pc - 1).map(|(name, _)| name))
        .collect();
    assert_eq!(jit_functions, t.wasm, "clew's JIT frames vs WasmBacktrace");
    for &pc in &t.clew[run.clone()] {
        assert!(reg.symbol_at(pc - 1).is_some(), "unnamed JIT pc {pc:#x}");
    }
    assert_eq!(run.len(), 5, "trampoline, c, b, a, trampoline");
    assert!(run.start >= 3, "host frames before the JIT frames");

    // Then native frames: through `call_a` and this test function, and well beyond.
    let in_call_a = position(&t.clew, run.end, call_a as *const () as usize)
        .expect("clew reaches call_a after the JIT frames");
    let in_test = position(
        &t.clew,
        in_call_a + 1,
        wasmtime_frames as *const () as usize,
    )
    .expect("clew reaches the test function");
    assert!(t.clew.len() > in_test + 2, "the walk goes on past the test");

    // libgcc knows the JIT code too (Wasmtime called `__register_frame`): both walks
    // agree PC for PC from the host function's frame to the end of the stack.
    assert_eq!(t.libgcc_rc, URC_END_OF_STACK);
    assert_eq!(t.clew[2..], t.libgcc[2..], "clew vs libgcc");

    // Deregistration: the module is alive (its code cannot be reused) but no longer in
    // the registry, and clew's walk now ends at the first JIT frame.
    let id = reg.handle().0;
    drop(reg);
    assert!(global().pin().find_module(text.start).is_none());
    assert!(global().pin().find_module(t.clew[run.start] - 1).is_none());
    let t2 = call_a(&a, &mut store);
    assert_eq!(t2.wasm, ["c", "b", "a"]);
    let run2 = jit_run(&t2.clew, &text);
    assert_eq!(run2.len(), 1, "the walk stops at the first JIT frame");
    assert_eq!(
        run2.end,
        t2.clew.len(),
        "the walk stops at the first JIT frame"
    );
    assert!(
        t2.libgcc.len() > t2.clew.len(),
        "libgcc still knows the module"
    );

    drop((instance, a, store, module));
    let guard = global().pin();
    assert!(guard.find_module(text.start).is_none_or(|m| m.id() != id));
}

// ---- (b) cranelift-jit ----

thread_local! {
    static TRACES: RefCell<Option<(Vec<usize>, Vec<usize>)>> = const { RefCell::new(None) };
}

/// The host function the JIT code calls.
extern "C" fn callback(x: i64) -> i64 {
    let clew = clew_trace();
    let (libgcc, _) = libgcc_trace();
    TRACES.with(|t| *t.borrow_mut() = Some((clew, libgcc)));
    black_box(x + 1)
}

#[inline(never)]
fn call_f(f: extern "C" fn(i64) -> i64, x: i64) -> (Vec<usize>, Vec<usize>) {
    assert_eq!(f(black_box(x)), (x + 1 + 1) * 2);
    TRACES.with(|t| t.borrow_mut().take()).unwrap()
}

/// cranelift-jit: f → g → callback. Unregistered, clew's walk ends at g (no CFI for it;
/// no frame-pointer fallback); registered through `JitUnwindInfo`, it walks g, f and on
/// into this test's frames; deregistered, it ends at g again.
#[test]
fn cranelift_frames() {
    let common::Chain {
        module,
        f,
        g,
        unwind,
    } = common::compile_chain(
        &[("preserve_frame_pointers", "true"), ("unwind_info", "true")],
        callback as *const u8,
    );
    // SAFETY: `f` was defined with this signature and the C calling convention.
    let f_ptr: extern "C" fn(i64) -> i64 =
        unsafe { std::mem::transmute(module.get_finalized_function(f)) };
    let g_start = module.get_finalized_function(g) as usize;
    let f_start = module.get_finalized_function(f) as usize;

    // Unregistered: the walk ends with g's frame, whose CFI nobody has.
    let (clew, libgcc) = call_f(f_ptr, 1);
    let last = *clew.last().unwrap();

    // Registered.
    let reg = unwind.register(&module, "cranelift test").unwrap();
    let range_of = |name: &str| {
        reg.functions()
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .range
            .clone()
    };
    let (g_range, f_range) = (range_of("g"), range_of("f"));
    assert_eq!((g_range.start, f_range.start), (g_start, f_start));
    assert!(
        g_range.contains(&(last - 1)),
        "unregistered, clew ends in g: {clew:#x?}"
    );
    assert!(!clew.iter().any(|&pc| f_range.contains(&(pc - 1))));
    assert!(!libgcc.iter().any(|&pc| f_range.contains(&(pc - 1))));
    {
        let guard = global().pin();
        let m = guard.find_module(f_start).expect("registered");
        assert_eq!(
            (m.id(), m.kind(), m.name()),
            (reg.handle().0, ModuleKind::Jit, "cranelift test")
        );
        assert_eq!(m.text(), reg.text());
    }

    let (clew, libgcc) = call_f(f_ptr, 2);
    // Entry 0 is in clew_trace, 1 in callback, 2 in g, 3 in f.
    let in_g = clew
        .iter()
        .position(|&pc| g_range.contains(&(pc - 1)))
        .expect("a frame in g");
    assert_eq!(reg.function_at(clew[in_g] - 1).unwrap().0, "g");
    assert_eq!(
        reg.function_at(clew[in_g + 1] - 1).map(|s| s.0),
        Some("f"),
        "f follows g: {clew:#x?}"
    );
    assert!(returns_into(clew[in_g + 2], call_f as *const () as usize));
    let in_test = position(&clew, in_g + 2, cranelift_frames as *const () as usize)
        .expect("clew reaches the test function");
    assert!(clew.len() > in_test + 2, "the walk goes on past the test");
    // libgcc was not told about this code: it still stops in g.
    assert!(!libgcc.iter().any(|&pc| f_range.contains(&(pc - 1))));

    // Deregistered: back to ending at g.
    drop(reg);
    assert!(global().pin().find_module(f_start).is_none());
    let (clew, _) = call_f(f_ptr, 3);
    assert!(g_range.contains(&(clew.last().unwrap() - 1)));
    assert!(!clew.iter().any(|&pc| f_range.contains(&(pc - 1))));

    // SAFETY: no JIT code runs any more and no pointer into it is used.
    unsafe { module.free_memory() };
}
