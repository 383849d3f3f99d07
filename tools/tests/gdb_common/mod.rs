//! Shared by the gdb tests: a `clew run --gdb` child on a `.wat` module, the real gdb
//! in batch mode against it, and parsers for gdb's and `monitor bt`'s backtraces.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// main → a → b → c; c calls clew.breakpoint on its first call (x = 5), then main
/// calls b again (so a breakpoint gdb sets on b is hit after the first stop).
/// Result: (5 + 10) * 2 + 1 + (1 + 10) * 2 = 53.
pub const NESTED: &str = r#"
(module $nested
  (import "clew" "breakpoint" (func $breakpoint))
  (func $main (export "main") (result i32)
    (i32.add (call $a (i32.const 5)) (call $b (i32.const 1))))
  (func $a (param i32) (result i32)
    (i32.add (call $b (local.get 0)) (i32.const 1)))
  (func $b (param i32) (result i32)
    (i32.mul (call $c (local.get 0)) (i32.const 2)))
  (func $c (param i32) (result i32)
    (if (i32.eq (local.get 0) (i32.const 5)) (then (call $breakpoint)))
    (i32.add (local.get 0) (i32.const 10))))
"#;

/// The module written to a fresh file.
pub fn wat_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clew-gdb-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A `clew run --gdb` child and where its stub listens.
pub struct Target {
    pub child: Child,
    pub addr: String,
    stderr: Option<BufReader<ChildStderr>>,
}

impl Target {
    /// Starts `clew run --gdb SPEC MODULE` and reads the address it prints.
    pub fn start(spec: &str, module: &Path) -> Target {
        Target::start_with(spec, &[], module, &[])
    }

    /// `clew run --gdb SPEC FLAGS... MODULE ARGS...`.
    pub fn start_with(spec: &str, flags: &[&str], module: &Path, args: &[&str]) -> Target {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clew"))
            .args(["run", "--gdb", spec])
            .args(flags)
            .arg(module)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning clew");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr = if let Some(i) = line.find("tcp ") {
            line[i + 4..].split_whitespace().next().unwrap().to_owned()
        } else if let Some(i) = line.find("/dev/pts/") {
            line[i..].split_whitespace().next().unwrap().to_owned()
        } else {
            panic!("clew run --gdb printed no address: {line:?}");
        };
        Target {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    /// Waits for the program to end (60 s at most, then kills it): status and stdout.
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, out, err)
    }

    /// Whether the program still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gdb -batch` attached to `addr` with `commands`; stdout and stderr together.
/// Fails the test when gdb is missing (CI installs it) or hangs (120 s).
pub fn gdb(addr: &str, commands: &[&str]) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args(["-q", "-nx", "-batch"])
        .args(["-ex", "set width 0", "-ex", "set height 0"])
        .args(["-ex", "set confirm off"])
        // A loaded CI machine may take seconds to symbolize for `monitor bt`.
        .args(["-ex", "set remotetimeout 60"])
        .args(["-ex", &format!("target remote {addr}")]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    // One file for stdout and stderr: gdb's messages stay in order with the output.
    let log = std::env::temp_dir().join(format!(
        "clew-gdb-{}-{}.log",
        std::process::id(),
        LOGS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let file = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("running gdb (apt-get install gdb; .ci/run does)");
    wait_output(child, Duration::from_secs(120));
    let s = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    s
}

static LOGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gdb hung (killed after {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A frame of gdb's `bt`: `#N  0xPC in NAME (...) from FILE` (PC absent for frame 0
/// when gdb has line info; inlined frames have none either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbFrame {
    pub pc: Option<u64>,
    pub name: String,
    pub from: Option<String>,
}

pub fn parse_gdb_bt(text: &str) -> Vec<GdbFrame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        let (pc, rest) = match rest.strip_prefix("0x") {
            Some(r) => {
                let (hex, r) = r.split_once(" in ").unwrap_or((r, ""));
                (u64::from_str_radix(hex, 16).ok(), r)
            }
            None => (None, rest),
        };
        let name = rest.split(" (").next().unwrap_or("").trim().to_owned();
        let from = rest.split(" from ").nth(1).map(|s| s.trim().to_owned());
        frames.push(GdbFrame { pc, name, from });
    }
    frames
}

/// `monitor bt` lines: `#N 0xPC in NAME (JIT module)` → (pc, name, jit).
pub fn parse_monitor_bt(text: &str) -> Vec<(u64, String, bool)> {
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix('#')?;
            let (_, rest) = l.split_once("0x")?;
            let (hex, rest) = rest.split_once(" in ")?;
            let pc = u64::from_str_radix(hex, 16).ok()?;
            let (name, module) = rest.rsplit_once(" (")?;
            Some((pc, name.to_owned(), module.starts_with("JIT ")))
        })
        .collect()
}

/// The JIT frames of a gdb backtrace (files under /clew/jit/): (pc, name).
pub fn jit_frames(bt: &[GdbFrame]) -> Vec<(u64, String)> {
    bt.iter()
        .filter(|f| f.from.as_deref().is_some_and(|f| f.contains("/clew/jit/")))
        .map(|f| (f.pc.unwrap_or(0), f.name.clone()))
        .collect()
}

/// The text between two marker lines gdb echoes (`echo MARK\n`).
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let s = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let e = text[s..].find(end).map(|i| s + i).unwrap_or(text.len());
    &text[s..e]
}
