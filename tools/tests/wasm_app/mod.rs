//! `tests/wasm/app.rs`, a Rust program compiled to wasm with DWARF by the real rustc
//! (`--target wasm32-unknown-unknown -g`): the module with source lines that
//! run_dwarf.rs and gdb_jit_interface.rs check frames against.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The program's source.
pub fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wasm/app.rs")
}

/// The 1-based line of `// at: NAME` in the source.
pub fn marked_line(name: &str) -> u32 {
    let text = std::fs::read_to_string(source()).unwrap();
    let i = text
        .lines()
        .position(|l| l.trim_end().ends_with(&format!("// at: {name}")))
        .unwrap_or_else(|| panic!("no `// at: {name}` in app.rs"));
    i as u32 + 1
}

/// Under CI a missing tool fails the test (`.ci/run` installs it); elsewhere the test
/// is skipped with a loud message. `None` means "skip".
pub fn skip_or_fail(what: &str) -> Option<()> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing: CI must install it (.ci/run does)");
    }
    eprintln!("\n!!! SKIPPING: {what} not found; this test did NOT run !!!\n");
    None
}

/// Compiles the program into `<temp>/<tag>-<pid>/app.wasm`; `None` (after a loud
/// message) when the wasm target is not installed outside CI.
pub fn build(tag: &str) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("app.wasm");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let o = Command::new(rustc)
        .args([
            "--target",
            "wasm32-unknown-unknown",
            "-g",
            "-C",
            "opt-level=1",
        ])
        .args(["--crate-type", "cdylib", "-C", "panic=abort", "-o"])
        .arg(&out)
        .arg(source())
        .output()
        .unwrap();
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("target may not be installed") || err.contains("can't find crate") {
            skip_or_fail("the wasm32-unknown-unknown target (rustup target add)")?;
        }
        panic!("rustc failed:\n{err}");
    }
    Some(out)
}
