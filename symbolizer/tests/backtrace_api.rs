//! The `backtrace`-shaped facade: code written against `backtrace` (`trace`, `resolve`,
//! `Backtrace::new`, `frames()`, `symbols()`, `name()`, `filename()`, `lineno()`) works on
//! clew's unwinder and symbolizer.
#![cfg(all(feature = "std", target_os = "linux"))]

use clew_symbolizer::backtrace::{self, Backtrace};

#[inline(never)]
fn level_two() -> Backtrace {
    std::hint::black_box(Backtrace::new())
}

#[inline(never)]
fn level_one() -> Backtrace {
    std::hint::black_box(level_two())
}

fn names(bt: &Backtrace) -> Vec<String> {
    bt.frames()
        .iter()
        .flat_map(|f| f.symbols())
        .filter_map(|s| s.name().map(|n| n.to_string()))
        .collect()
}

#[test]
fn backtrace_new_names_the_callers_with_files_and_lines() {
    let bt = level_one();
    let names = names(&bt);
    let at = |suffix: &str| names.iter().position(|n| n.ends_with(suffix));
    let (two, one) = (at("::level_two"), at("::level_one"));
    assert!(two.is_some() && one.is_some() && two < one, "{names:#?}");
    let sym = bt
        .frames()
        .iter()
        .flat_map(|f| f.symbols())
        .find(|s| {
            s.name()
                .is_some_and(|n| n.to_string().ends_with("::level_one"))
        })
        .unwrap();
    let file = sym.filename().expect("a file");
    assert!(file.ends_with("tests/backtrace_api.rs"), "{file:?}");
    assert!(sym.lineno().is_some_and(|l| l > 0));
    // The raw name is mangled, the displayed one is not.
    let name = sym.name().unwrap();
    assert!(name.as_str().unwrap().starts_with("_R") || name.as_str().unwrap().starts_with("_ZN"));
    let text = format!("{bt:?}");
    assert!(
        text.contains("level_one") && text.contains("backtrace_api.rs:"),
        "{text}"
    );
}

#[test]
fn new_unresolved_then_resolve() {
    let mut bt = Backtrace::new_unresolved();
    assert!(bt.frames().len() > 2);
    assert!(bt.frames().iter().all(|f| f.symbols().is_empty()));
    bt.resolve();
    assert!(
        names(&bt)
            .iter()
            .any(|n| n.contains("new_unresolved_then_resolve"))
    );
    assert!(bt.frames()[0].module_base_address().is_some());
}

#[test]
fn trace_and_resolve() {
    let mut frames = Vec::new();
    backtrace::trace(|f| {
        frames.push(*f);
        true
    });
    assert!(frames.len() > 3);
    let mut names = Vec::new();
    backtrace::resolve(frames[0].ip(), |s| {
        names.push(s.name().map(|n| n.to_string()));
    });
    assert!(
        names
            .iter()
            .flatten()
            .any(|n| n.contains("trace_and_resolve")),
        "{names:?}"
    );
    // Stopping early.
    let mut n = 0;
    backtrace::trace(|_| {
        n += 1;
        n < 2
    });
    assert_eq!(n, 2);
    // A function's own address resolves to it (+1: `resolve` looks before the address).
    let f = level_two as fn() -> Backtrace as usize;
    let mut found = None;
    backtrace::resolve((f + 1) as *mut _, |s| {
        found = s.name().map(|n| n.to_string());
    });
    assert!(found.is_some_and(|n| n.ends_with("level_two")));
}
