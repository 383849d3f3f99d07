//! `clew symbolize`: binutils addr2line's output layout for the same flags, addresses
//! from arguments or stdin (answered as they arrive), `--json`, `--pid`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use object::{Object, ObjectSymbol};

fn clew() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clew"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../symbolizer/tests/fixtures/small.c")
}

/// Builds the C fixture with `gcc -O0 -g` into a temp dir.
fn build(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clew-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("small");
    let ok = Command::new("gcc")
        .args(["-O0", "-g", "-o"])
        .arg(&bin)
        .arg(fixture())
        .status()
        .expect("gcc is needed");
    assert!(ok.success());
    bin
}

/// Addresses inside the fixture's own functions, and the symbol address of `main`.
fn addresses(bin: &Path) -> (Vec<String>, u64) {
    let data = std::fs::read(bin).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut out = Vec::new();
    let mut main = 0;
    for s in file.symbols() {
        let name = s.name().unwrap_or("");
        if ["main", "sum_squares", "helper"].contains(&name) {
            if name == "main" {
                main = s.address();
            }
            for off in (0..s.size()).step_by(7) {
                out.push(format!("{:#x}", s.address() + off));
            }
        }
    }
    assert!(out.len() > 10 && main != 0);
    // Unknown and malformed addresses too.
    out.push("0x10".into());
    out.push("zz".into());
    (out, main)
}

fn output(cmd: &mut Command, stdin: Option<&str>) -> String {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn same_layout_as_binutils_addr2line() {
    let bin = build("layout");
    let (addrs, _) = addresses(&bin);
    for flags in [
        &[][..],
        &["-f"],
        &["-a"],
        &["-a", "-f"],
        &["-f", "-i"],
        &["-a", "-f", "-i", "-p"],
        &["-p", "-f", "-C"],
        &["-s", "-f", "-i"],
        &["-a", "-p"],
    ] {
        let binutils = output(
            Command::new("addr2line")
                .arg("-e")
                .arg(&bin)
                .args(flags)
                .args(&addrs),
            None,
        );
        let ours = output(
            clew()
                .arg("symbolize")
                .arg("-e")
                .arg(&bin)
                .args(flags)
                .args(&addrs),
            None,
        );
        assert_eq!(ours, binutils, "flags {flags:?}");
        // The same from stdin.
        let stdin = addrs.join("\n") + "\n";
        let ours = output(
            clew().arg("symbolize").arg("-e").arg(&bin).args(flags),
            Some(&stdin),
        );
        assert_eq!(ours, binutils, "flags {flags:?}, stdin");
    }
}

#[test]
fn answers_each_address_as_it_arrives() {
    let bin = build("pipe");
    let (addrs, _) = addresses(&bin);
    let mut child = clew()
        .args(["symbolize", "-f", "-e"])
        .arg(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    for a in addrs.iter().take(5) {
        // One address, then wait for its two lines before sending the next (perf and
        // other tools drive addr2line this way).
        writeln!(input, "{a}").unwrap();
        input.flush().unwrap();
        let (mut func, mut loc) = (String::new(), String::new());
        output.read_line(&mut func).unwrap();
        output.read_line(&mut loc).unwrap();
        assert!(loc.contains("small.c:"), "{func}{loc}");
    }
    drop(input);
    assert!(child.wait().unwrap().success());
}

#[test]
fn json_output() {
    let bin = build("json");
    let (addrs, main) = addresses(&bin);
    let out = output(
        clew()
            .args(["symbolize", "--json", "-e"])
            .arg(&bin)
            .arg(format!("{main:#x}"))
            .arg("zz"),
        None,
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let frame = &lines[0]["frames"][0];
    assert_eq!(frame["function"], "main");
    assert!(frame["file"].as_str().unwrap().ends_with("small.c"));
    assert!(frame["line"].as_u64().unwrap() > 0);
    assert_eq!(frame["inlined"], false);
    assert_eq!(lines[0]["module"]["kind"], "elf");
    assert!(lines[1]["error"].is_string());
    assert!(!addrs.is_empty());
}

#[test]
fn symbolizes_a_running_process() {
    let bin = build("pid");
    let mut child = Command::new(&bin)
        .arg("sleep")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let main = u64::from_str_radix(line.trim().trim_start_matches("0x"), 16).unwrap();
    let out = output(
        clew()
            .args(["symbolize", "-f", "--pid"])
            .arg(child.id().to_string())
            .arg(format!("{main:#x}")),
        None,
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("main"), "{out}");
    assert!(lines.next().unwrap().contains("small.c:"), "{out}");
}
