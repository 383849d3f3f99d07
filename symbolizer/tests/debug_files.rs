//! The host layer finds separate debug files (`.gnu_debuglink`, build-id), reads
//! compressed debug sections, and falls back to the symbol table without DWARF.
#![cfg(all(feature = "std", target_os = "linux"))]

mod common;

use std::path::Path;
use std::process::Command;

use clew_symbolizer::host::{self, OpenOptions};
use common::*;

fn objcopy(args: &[&str]) -> bool {
    Command::new("objcopy")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Frames of `addrs` as (function, file, line) triples.
fn frames(path: &Path, opts: &OpenOptions, addrs: &[u64]) -> Vec<Vec<LlvmFrame>> {
    let image = host::open_with(path, opts).unwrap();
    addrs
        .iter()
        .map(|&a| as_llvm(&image.symbolize(a).unwrap()))
        .collect()
}

#[test]
fn separate_and_compressed_debug_info() {
    if !have("objcopy") || !have("gcc") {
        panic!("objcopy and gcc are needed (binutils, gcc)");
    }
    let dir = temp_dir("debugfiles");
    let full = dir.join("small");
    build_c(&fixture("small.c"), &full, &["-O2", "-g", "-Wl,--build-id"]);
    let addrs = sample_addresses(&full, 200, 7);
    let opts = OpenOptions::default();
    let expected = frames(&full, &opts, &addrs);
    assert!(
        expected.iter().any(|f| f.len() > 1),
        "the fixture has inlined frames"
    );
    let with_lines = expected
        .iter()
        .filter(|f| {
            f.first()
                .is_some_and(|f| f.file.ends_with("small.c") && f.line > 0)
        })
        .count();
    assert!(
        with_lines * 4 >= addrs.len(),
        "{with_lines} addresses in small.c"
    );

    // .gnu_debuglink next to the stripped file.
    let debug = dir.join("small.debug");
    assert!(objcopy(&["--only-keep-debug", p(&full), p(&debug)]));
    let stripped = dir.join("small.stripped");
    assert!(objcopy(&["--strip-debug", p(&full), p(&stripped)]));
    let linked = dir.join("small.linked");
    assert!(
        Command::new("objcopy")
            .current_dir(&dir)
            .args([
                "--add-gnu-debuglink=small.debug",
                "small.stripped",
                "small.linked"
            ])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        frames(&linked, &opts, &addrs),
        expected,
        "via .gnu_debuglink"
    );

    // Build-id under a debug root.
    let image = host::open(&full).unwrap();
    let id = image.build_id().expect("a build-id").to_vec();
    let root = dir.join("debugroot");
    let hex: String = id[1..].iter().map(|b| format!("{b:02x}")).collect();
    let by_id = root.join(".build-id").join(format!("{:02x}", id[0]));
    std::fs::create_dir_all(&by_id).unwrap();
    std::fs::copy(&debug, by_id.join(format!("{hex}.debug"))).unwrap();
    let opts_root = OpenOptions {
        debug_dirs: vec![root],
        ..OpenOptions::default()
    };
    assert_eq!(
        frames(&stripped, &opts_root, &addrs),
        expected,
        "via build-id"
    );

    // Compressed debug sections (zlib; zstd where objcopy has it).
    let zlib = dir.join("small.zlib");
    assert!(objcopy(&[
        "--compress-debug-sections=zlib",
        p(&full),
        p(&zlib)
    ]));
    assert_eq!(frames(&zlib, &opts, &addrs), expected, "zlib-compressed");
    let zstd = dir.join("small.zstd");
    if objcopy(&["--compress-debug-sections=zstd", p(&full), p(&zstd)]) {
        assert_eq!(frames(&zstd, &opts, &addrs), expected, "zstd-compressed");
    } else {
        eprintln!("objcopy cannot compress with zstd here: zstd case not run");
    }

    // No DWARF at all: the symbol table names the functions, the file is unknown.
    let no_debug = OpenOptions {
        separate_debug: false,
        ..OpenOptions::default()
    };
    let bare = frames(&stripped, &no_debug, &addrs);
    for (b, e) in bare.iter().zip(&expected) {
        assert_eq!(b.len(), 1, "one frame per address without DWARF");
        assert_eq!(b[0].function, e.last().unwrap().function);
        assert_eq!(b[0].line, 0);
    }
    // A budget too small to keep anything: every lookup parses again, same answers;
    // threads sharing one image give the same answers too.
    let tiny = OpenOptions {
        image: clew_symbolizer::Options {
            budget: 1,
            ..Default::default()
        },
        ..OpenOptions::default()
    };
    assert_eq!(frames(&full, &tiny, &addrs), expected, "budget of 1 byte");
    let shared = host::open(&full).unwrap();
    let parallel = host::parallel::map(&addrs, 4, |a| as_llvm(&shared.symbolize(a).unwrap()));
    assert_eq!(parallel, expected, "4 threads");
    let _ = std::fs::remove_dir_all(dir);
}
