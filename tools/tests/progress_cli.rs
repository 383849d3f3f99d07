//! Progress on stderr only on a terminal: `clew run`'s spinner while Wasmtime compiles,
//! `clew symbolize`'s bar over a batch of addresses. `script` gives the binary a
//! pseudo-terminal; `CLEW_PROGRESS_DELAY_MS=0` draws at once instead of after a second.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_clew");

/// Runs `command` (a shell command line) under `script`, with a pseudo-terminal as its
/// stdout and stderr; returns what the terminal showed. `None` (loudly) without
/// `script`, outside CI.
fn on_terminal(command: &str) -> Option<String> {
    let o = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output();
    match o {
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "\n!!! SKIPPING: `script` (util-linux) not found: terminal checks did NOT run !!!\n"
            );
            None
        }
        Err(e) => panic!("`script` (util-linux) is needed: {e}"),
    }
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clew-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The bar's last drawing erases its line(s): after the last erase (`ESC [2K`) only
/// cursor movements follow, so nothing of the bar is left on the terminal.
fn cleared(tty: &str) -> bool {
    let Some((_, tail)) = tty.rsplit_once("\x1b[2K") else {
        return false;
    };
    let mut rest = tail;
    // Drop CSI sequences (ESC [ digits letter) and whitespace.
    while let Some(i) = rest.find("\x1b[") {
        let (before, after) = rest.split_at(i);
        if !before.trim().is_empty() {
            return false;
        }
        let end = after[2..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(after.len(), |j| j + 3);
        rest = &after[end..];
    }
    rest.trim().is_empty()
}

#[test]
fn run_shows_a_spinner_while_compiling_only_on_a_terminal() {
    let mut wat = String::from("(module\n");
    for i in 0..200 {
        wat += &format!("  (func $f{i} (export \"f{i}\") (result i32) i32.const {i})\n");
    }
    let m = temp("progress.wat", &(wat + ")"));
    let m = m.to_str().unwrap();
    let o = Command::new(BIN)
        .args(["run", m, "--invoke", "f7"])
        .env("CLEW_PROGRESS_DELAY_MS", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "7");
    assert!(o.stderr.is_empty(), "no progress in a pipe: {o:?}");
    let Some(tty) = on_terminal(&format!(
        "CLEW_PROGRESS_DELAY_MS=0 {BIN} run {m} --invoke f7 >/dev/null"
    )) else {
        return;
    };
    assert!(
        tty.contains("compiling ")
            && tty.contains("progress.wat")
            && tty.contains("with Cranelift"),
        "{tty:?}"
    );
    assert!(cleared(&tty), "{tty:?}");
}

#[test]
fn symbolize_shows_a_bar_over_a_batch_only_on_a_terminal() {
    let addrs: String = (0..2000)
        .map(|i| format!("{:#x}\n", 0x1000 + i * 0x40))
        .collect();
    let input = temp("addrs.txt", &addrs);
    let input = input.to_str().unwrap();
    let o = Command::new(BIN)
        .args(["symbolize", "-e", BIN, "-f"])
        .env("CLEW_PROGRESS_DELAY_MS", "0")
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4000);
    assert!(o.stderr.is_empty(), "no progress in a pipe: {o:?}");
    let Some(tty) = on_terminal(&format!(
        "CLEW_PROGRESS_DELAY_MS=0 {BIN} symbolize -e {BIN} -f <{input} >/dev/null"
    )) else {
        return;
    };
    assert!(
        tty.contains(&format!("symbolizing in {BIN}")) && tty.contains("/2000"),
        "{tty:?}"
    );
    assert!(cleared(&tty), "{tty:?}");
}
