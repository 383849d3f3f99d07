//! JIT modules publish their symbol maps in clew's registry: a Wasmtime module's
//! functions (and trampolines) resolve by name, with wasm bytecode offsets, from nothing
//! but the registry, and stop resolving once the registration is dropped.

use clew::jit;
use clew_unwinder::global;

#[test]
fn wasmtime_functions_resolve_through_the_registry() {
    let engine = wasmtime::Engine::default();
    let wat = r#"(module
        (func $a (export "a") (param i32) (result i32) local.get 0 call $b)
        (func $b (param i32) (result i32) local.get 0 i32.const 2 i32.mul call $c)
        (func $c (param i32) (result i32) local.get 0 i32.const 1 i32.add))"#;
    let module = wasmtime::Module::new(&engine, wat)
        .map_err(jit::wasmtime::wasmtime_error)
        .unwrap();
    let reg = jit::wasmtime::register(&module).unwrap();
    let mut named = Vec::new();
    for f in reg.functions() {
        let g = global().pin();
        let m = g.find_module(f.range.start).expect("registered");
        let hit = m.symbols().lookup(f.range.start + 1).expect("a symbol");
        assert_eq!(
            (hit.name, hit.start, hit.offset),
            (f.name.as_str(), f.range.start, 1)
        );
        let with_offset = f
            .range
            .clone()
            .filter(|&pc| m.symbols().source_offset(pc).is_some())
            .count();
        assert!(with_offset > 0, "{} has wasm offsets", f.name);
        assert_eq!(
            m.symbols().source_offset(f.range.start),
            None,
            "the prologue has none"
        );
        named.push(hit.name.to_owned());
    }
    assert_eq!(named, ["a", "b", "c"]);
    // Trampolines are named too.
    let g = global().pin();
    let m = g.find_module(reg.text().start).unwrap();
    assert!(
        m.symbols()
            .symbols()
            .iter()
            .any(|s| s.name.contains("trampoline")),
        "{:?}",
        m.symbols().symbols()
    );
    let a = reg.functions()[0].range.start;
    drop(g);
    drop(reg);
    assert!(
        global().pin().find_module(a).is_none(),
        "gone with the registration"
    );
}
