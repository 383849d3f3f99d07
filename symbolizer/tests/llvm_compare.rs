//! clew's frames against llvm-symbolizer's, on binaries built here: a Rust program with
//! debug info and inlining (legacy and v0 mangling) and a C++ program built `g++ -O2 -g`.
//! For thousands of addresses the frames (raw function names, files, lines, columns,
//! inline depth) must agree for at least 99% of addresses; every kind of difference is
//! counted and printed. Demangled Rust names must carry no leftover mangling.
//!
//! Variants: Rust DWARF 4 with legacy and v0 mangling and Rust DWARF 5; C++ DWARF 5 (GCC
//! 12's default) and DWARF 4. Line 0 is unknown (`None`) for clew and 0 for llvm: equal.
//! Remaining kinds of difference, when a toolchain produces them, are printed by kind
//! ("inline depth", "function name", "file", "line") with examples.
#![cfg(all(feature = "std", target_os = "linux"))]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use clew_symbolizer::host;
use common::*;

/// Addresses per binary.
const ADDRS: usize = 2500;

struct Report {
    agree: usize,
    total: usize,
    kinds: BTreeMap<&'static str, Vec<String>>,
}

fn compare(tool: &str, bin: &Path, seed: u64) -> Report {
    let addrs = sample_addresses(bin, ADDRS, seed);
    let theirs = llvm_frames(tool, bin, &addrs);
    let image = host::open(bin).unwrap();
    let mut report = Report {
        agree: 0,
        total: addrs.len(),
        kinds: BTreeMap::new(),
    };
    for (addr, theirs) in addrs.iter().zip(&theirs) {
        let ours = as_llvm(&image.symbolize(*addr).unwrap_or_default());
        let same = |a: &LlvmFrame, b: &LlvmFrame| {
            // Columns of line-0 rows mean nothing: clew reports neither.
            a.function == b.function
                && a.file == b.file
                && a.line == b.line
                && (a.line == 0 || a.column == b.column)
        };
        if ours.len() == theirs.len() && ours.iter().zip(theirs).all(|(a, b)| same(a, b)) {
            report.agree += 1;
            continue;
        }
        let kind = if ours.len() != theirs.len() {
            "inline depth"
        } else if ours
            .iter()
            .zip(theirs)
            .any(|(a, b)| a.function != b.function)
        {
            "function name"
        } else if ours.iter().zip(theirs).any(|(a, b)| a.file != b.file) {
            "file"
        } else {
            "line"
        };
        report
            .kinds
            .entry(kind)
            .or_default()
            .push(format!("{addr:#x}:\n  clew: {ours:?}\n  llvm: {theirs:?}"));
    }
    eprintln!(
        "{}: {}/{} addresses agree with llvm-symbolizer ({:.2}%)",
        bin.display(),
        report.agree,
        report.total,
        100.0 * report.agree as f64 / report.total as f64
    );
    for (kind, cases) in &report.kinds {
        eprintln!("  {kind}: {} addresses, e.g.", cases.len());
        for c in cases.iter().take(3) {
            eprintln!("  {c}");
        }
    }
    report
}

fn assert_agrees(r: &Report) {
    assert!(
        r.agree * 100 >= r.total * 99,
        "only {}/{} addresses agree with llvm-symbolizer",
        r.agree,
        r.total
    );
}

/// Leftover Rust mangling in a demangled name.
fn mangled_leftovers(name: &str) -> bool {
    let hash = name.rsplit("::").next().is_some_and(|last| {
        last.len() == 17
            && last.starts_with('h')
            && last[1..].bytes().all(|b| b.is_ascii_hexdigit())
    });
    name.starts_with("_ZN")
        || name.starts_with("_R")
        || ["$LT$", "$GT$", "$u20$", "$C$", "..", "$RF$"]
            .iter()
            .any(|m| name.contains(m))
        || hash
}

fn check_rust_demangling(bin: &Path, seed: u64) -> usize {
    let image = host::open(bin).unwrap();
    let mut checked = 0;
    for addr in sample_addresses(bin, ADDRS, seed) {
        for f in image.symbolize(addr).unwrap_or_default() {
            let Some(name) = f.function else { continue };
            let raw = name.raw();
            let rust = raw.starts_with("_R")
                || (raw.starts_with("_ZN") && raw.contains("17h") && raw.ends_with('E'));
            if !rust {
                continue;
            }
            checked += 1;
            let d = name.demangled();
            assert!(
                !mangled_leftovers(d),
                "{raw} demangles to {d}, which still looks mangled"
            );
        }
    }
    checked
}

#[test]
fn rust_binaries_agree_with_llvm_symbolizer() {
    let Some(tool) = llvm_symbolizer() else {
        return;
    };
    let dir = temp_dir("rust");
    let legacy = dir.join("inline_heavy_legacy");
    let v0 = dir.join("inline_heavy_v0");
    build_rust(&fixture("inline_heavy.rs"), &legacy, &[]);
    build_rust(
        &fixture("inline_heavy.rs"),
        &v0,
        &["-C", "symbol-mangling-version=v0"],
    );
    let r = compare(&tool, &legacy, 0x5eed_0001);
    assert_agrees(&r);
    let r = compare(&tool, &v0, 0x5eed_0002);
    assert_agrees(&r);
    // DWARF 5: .debug_rnglists, .debug_addr, .debug_line_str, 0-based file indexes.
    let dwarf5 = dir.join("inline_heavy_dwarf5");
    build_rust(
        &fixture("inline_heavy.rs"),
        &dwarf5,
        &["-C", "dwarf-version=5"],
    );
    let r = compare(&tool, &dwarf5, 0x5eed_0006);
    assert_agrees(&r);
    let n = check_rust_demangling(&legacy, 3) + check_rust_demangling(&v0, 4);
    assert!(n > 1000, "only {n} Rust names checked");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cpp_binary_agrees_with_llvm_symbolizer() {
    let Some(tool) = llvm_symbolizer() else {
        return;
    };
    let dir = temp_dir("cpp");
    let bin = dir.join("inline_heavy_cpp");
    build_cpp(&fixture("inline_heavy.cpp"), &bin, &[]);
    let r = compare(&tool, &bin, 0x5eed_0003);
    assert_agrees(&r);
    // GCC 12 writes DWARF 5 by default; DWARF 4 too.
    let dwarf4 = dir.join("inline_heavy_cpp_dwarf4");
    build_cpp(&fixture("inline_heavy.cpp"), &dwarf4, &["-gdwarf-4"]);
    let r = compare(&tool, &dwarf4, 0x5eed_0007);
    assert_agrees(&r);
    // C++ names demangle to readable names.
    let image = host::open(&bin).unwrap();
    let main_addr = sample_addresses(&bin, 400, 5).into_iter().find_map(|a| {
        let f = image.symbolize(a).ok()?;
        f.iter()
            .find(|f| {
                f.function
                    .as_ref()
                    .is_some_and(|n| n.raw().starts_with("_ZN3app9apply_all"))
            })
            .map(|f| f.function.clone().unwrap())
    });
    if let Some(name) = main_addr {
        assert!(
            name.demangled().starts_with("int app::apply_all<"),
            "{}",
            name.demangled()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
