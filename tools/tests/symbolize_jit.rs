//! JIT code symbolizes through clew's registry: a Wasmtime module's functions resolve by
//! name (with wasm offsets), in a backtrace too, and stop resolving once the module's
//! registration is dropped; native addresses next to them resolve from the ELF image;
//! cranelift-jit functions resolve by name.

use clew::jit;
use clew_symbolizer::ModuleKind;
use clew_symbolizer::backtrace::Backtrace;
use wasmtime::{Caller, Engine, Func, Instance, Module, Store};

const WAT: &str = r#"(module $jit_test
    (import "host" "capture" (func $capture))
    (func $a (export "a") (param i32) (result i32) local.get 0 call $b)
    (func $b (param i32) (result i32) local.get 0 i32.const 2 i32.mul call $c)
    (func $c (param i32) (result i32) call $capture local.get 0 i32.const 1 i32.add))"#;

fn module() -> (Engine, Module) {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT)
        .map_err(jit::wasmtime::wasmtime_error)
        .unwrap();
    (engine, module)
}

#[test]
fn wasmtime_functions_symbolize_by_name_until_dropped() {
    let (_engine, module) = module();
    let reg = jit::wasmtime::register(&module).unwrap();
    let symbolizer = clew_symbolizer::host::current_process();
    let mut named = Vec::new();
    let mut with_offsets = 0;
    for f in reg.functions() {
        for pc in f.range.clone() {
            let s = symbolizer.symbolize(pc as u64).unwrap();
            let m = s.module.as_ref().unwrap();
            assert_eq!(m.kind, ModuleKind::Jit);
            assert_eq!(&*m.name, "jit_test");
            assert_eq!(s.symbol_start, Some(f.range.start as u64));
            let frame = &s.frames[0];
            assert_eq!(frame.function.as_ref().unwrap().raw(), f.name);
            with_offsets += usize::from(frame.source_offset.is_some());
        }
        named.push(f.name.clone());
    }
    assert_eq!(named, ["a", "b", "c"]);
    assert!(with_offsets > 0, "wasm offsets of the function bodies");
    // Trampolines are named from the image's symbol table.
    let trampoline = reg.text().find(|&pc| {
        symbolizer.symbolize(pc as u64).is_ok_and(|s| {
            s.frames
                .first()
                .and_then(|f| f.function.as_ref())
                .is_some_and(|n| n.raw().contains("trampoline"))
        })
    });
    assert!(trampoline.is_some(), "a trampoline symbolizes by name");
    // Native code still resolves from its ELF image.
    let native = wasmtime_functions_symbolize_by_name_until_dropped as fn() as usize as u64;
    let s = symbolizer.symbolize(native).unwrap();
    assert_eq!(s.module.as_ref().unwrap().kind, ModuleKind::Elf);
    assert!(
        s.outer_function()
            .unwrap()
            .demangled()
            .ends_with("wasmtime_functions_symbolize_by_name_until_dropped")
    );
    let a = reg.functions()[0].range.start as u64;
    drop(reg);
    match symbolizer.symbolize(a) {
        Err(_) => {}
        Ok(s) => assert!(
            s.module.as_ref().is_none_or(|m| m.kind != ModuleKind::Jit) && s.frames.is_empty(),
            "still resolves after the registration is dropped: {s:?}"
        ),
    }
}

#[test]
fn backtrace_facade_names_jit_frames() {
    let (engine, module) = module();
    let reg = jit::wasmtime::register(&module).unwrap();
    let mut store = Store::new(&engine, None::<Backtrace>);
    let capture = Func::wrap(&mut store, |mut caller: Caller<'_, Option<Backtrace>>| {
        *caller.data_mut() = Some(Backtrace::new());
    });
    let instance = Instance::new(&mut store, &module, &[capture.into()])
        .map_err(jit::wasmtime::wasmtime_error)
        .unwrap();
    let a = instance
        .get_typed_func::<i32, i32>(&mut store, "a")
        .map_err(jit::wasmtime::wasmtime_error)
        .unwrap();
    assert_eq!(
        a.call(&mut store, 20)
            .map_err(jit::wasmtime::wasmtime_error)
            .unwrap(),
        41
    );
    let bt = store.data_mut().take().expect("captured");
    let names: Vec<String> = bt
        .frames()
        .iter()
        .flat_map(|f| f.symbols())
        .filter_map(|s| s.name().map(|n| n.to_string()))
        .collect();
    let pos = |n: &str| names.iter().position(|x| x == n);
    let (c, b, a) = (pos("c"), pos("b"), pos("a"));
    assert!(
        c.is_some() && c < b && b < a,
        "JIT frames c, b, a in order: {names:#?}"
    );
    assert!(
        names[a.unwrap()..]
            .iter()
            .any(|n| n.ends_with("backtrace_facade_names_jit_frames")),
        "then the native test function: {names:#?}"
    );
    drop(reg);
}

#[test]
fn cranelift_functions_symbolize_by_name() {
    use cranelift_codegen::ir::{AbiParam, InstBuilder, types::I64};
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
    use cranelift_jit::{JITBuilder, JITModule};
    use cranelift_module::{Linkage, Module as _, default_libcall_names};

    let jb = JITBuilder::with_flags(&[("unwind_info", "true")], default_libcall_names()).unwrap();
    let mut module = JITModule::new(jb);
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I64));
    let mut unwind = jit::cranelift::JitUnwindInfo::new();
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::new();
    for (name, k) in [("add_one", 1), ("add_two", 2)] {
        let id = module
            .declare_function(name, Linkage::Export, &sig)
            .unwrap();
        ctx.func.signature = sig.clone();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let x = b.block_params(block)[0];
        let v = b.ins().iadd_imm_s(x, k);
        b.ins().return_(&[v]);
        b.finalize(module.target_config());
        module.define_function(id, &mut ctx).unwrap();
        unwind.add(&ctx, module.isa(), id).unwrap();
        module.clear_context(&mut ctx);
        ids.push((name, id));
    }
    module.finalize_definitions().unwrap();
    let reg = unwind.register(&module, "cranelift symbols").unwrap();
    let symbolizer = clew_symbolizer::host::current_process();
    for (name, id) in ids {
        let start = module.get_finalized_function(id) as u64;
        let s = symbolizer.symbolize(start + 1).unwrap();
        assert_eq!(s.module.as_ref().unwrap().kind, ModuleKind::Jit);
        assert_eq!(&*s.module.as_ref().unwrap().name, "cranelift symbols");
        assert_eq!(s.outer_function().unwrap().raw(), name);
        assert_eq!(s.symbol_start, Some(start));
    }
    drop(reg);
    // SAFETY: no JIT code runs any more and no pointer into it is used.
    unsafe { module.free_memory() };
}
