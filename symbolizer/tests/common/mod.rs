//! Shared helpers of the symbolizer's integration tests: build fixture binaries, find
//! llvm-symbolizer, sample addresses, read llvm-symbolizer's answers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// A fresh directory under the system's temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("clew-symbolizer-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a Rust fixture with debug info and inlining (`-C opt-level=2`).
pub fn build_rust(src: &Path, out: &Path, extra: &[&str]) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    run(Command::new(rustc)
        .args(["--edition=2021", "-C", "debuginfo=2", "-C", "opt-level=2"])
        .args(extra)
        .arg(src)
        .arg("-o")
        .arg(out));
}

/// Builds a C++ fixture with `g++ -O2 -g`.
pub fn build_cpp(src: &Path, out: &Path, extra: &[&str]) {
    run(Command::new("g++")
        .args(["-O2", "-g"])
        .args(extra)
        .arg(src)
        .arg("-o")
        .arg(out));
}

/// Builds a C fixture with `gcc`.
pub fn build_c(src: &Path, out: &Path, extra: &[&str]) {
    run(Command::new("gcc").args(extra).arg(src).arg("-o").arg(out));
}

/// Whether `tool` runs.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// llvm-symbolizer (any version). Missing: a loud skip on a developer machine, a
/// failure in CI (`CI` set), which must install it (Debian: `apt-get install llvm`).
pub fn llvm_symbolizer() -> Option<String> {
    let names = std::iter::once("llvm-symbolizer".to_string())
        .chain((11..=21).rev().map(|v| format!("llvm-symbolizer-{v}")));
    for name in names {
        if have(&name) {
            return Some(name);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("llvm-symbolizer is missing: CI must install it (apt-get install llvm)");
    }
    eprintln!(
        "\n!!! SKIPPING: llvm-symbolizer not found (apt-get install llvm); \
         the comparison with llvm-symbolizer did NOT run !!!\n"
    );
    None
}

/// `n` addresses inside the sized code symbols of `path`, spread over all of them
/// (deterministic).
pub fn sample_addresses(path: &Path, n: usize, seed: u64) -> Vec<u64> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut funcs: Vec<(u64, u64)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter(|s| {
            s.section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|sec| sec.kind() == SectionKind::Text)
        })
        .map(|s| (s.address(), s.size()))
        .collect();
    funcs.sort_unstable();
    funcs.dedup();
    assert!(!funcs.is_empty(), "{} has no code symbols", path.display());
    let mut state = seed | 1;
    let mut next = || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            // Every function once, then random ones.
            let (a, s) = if i < funcs.len() {
                funcs[i]
            } else {
                funcs[(next() % funcs.len() as u64) as usize]
            };
            a + next() % s
        })
        .collect()
}

/// One frame as llvm-symbolizer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlvmFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// llvm-symbolizer's frames for each address (`--no-demangle`, inlined frames).
pub fn llvm_frames(tool: &str, path: &Path, addrs: &[u64]) -> Vec<Vec<LlvmFrame>> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .arg(format!("--obj={}", path.display()))
        .args(["--output-style=JSON", "--no-demangle", "--inlining"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let frames: Vec<Vec<LlvmFrame>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["Symbol"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| LlvmFrame {
                    function: f["FunctionName"].as_str().unwrap_or("").to_string(),
                    file: f["FileName"].as_str().unwrap_or("").to_string(),
                    line: f["Line"].as_u64().unwrap_or(0) as u32,
                    column: f["Column"].as_u64().unwrap_or(0) as u32,
                })
                .filter(|f| !(f.function.is_empty() && f.file.is_empty() && f.line == 0))
                .collect()
        })
        .collect();
    assert_eq!(frames.len(), addrs.len(), "one answer per address");
    frames
}

/// clew's frames in llvm-symbolizer's terms (unknowns as llvm prints them).
pub fn as_llvm(frames: &[clew_symbolizer::Frame]) -> Vec<LlvmFrame> {
    frames
        .iter()
        .map(|f| LlvmFrame {
            function: f
                .function
                .as_ref()
                .map_or(String::new(), |n| n.raw().to_string()),
            file: f.file.as_deref().unwrap_or("").to_string(),
            line: f.line.unwrap_or(0),
            column: f.column.unwrap_or(0),
        })
        .collect()
}
