//! `clew eh-frame` on real ELF files: the `clew` binary itself (thousands of FDEs, named
//! from its symbol table, a clean `--check`), `--json`, `-v` rows, and a copy whose
//! `.eh_frame` was damaged (`--check` names the problem and exits 1, never a panic).

use std::process::{Command, Output};

use object::{Object, ObjectSection};

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn lists_and_checks_the_clew_binary() {
    let exe = env!("CARGO_BIN_EXE_clew");
    let o = clew(&["eh-frame", "--check", exe]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("check: ok"), "{out}");
    assert!(
        out.contains("clew::run::capture"),
        "FDEs are named from the symbol table"
    );
    let count: usize = out
        .lines()
        .find_map(|l| {
            l.split_once(" CIEs, ")?
                .1
                .strip_suffix(" FDEs")?
                .parse()
                .ok()
        })
        .expect("a count line");
    assert!(count > 1000, "{count}");

    let o = clew(&["eh-frame", "--json", exe]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["fdes"].as_array().unwrap().len(), count);

    let o = clew(&["eh-frame", "-v", exe]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.trim_start().contains(": cfa=r7+8 r16=c-8")),
        "rows with -v"
    );
}

#[test]
fn damaged_eh_frame_fails_the_check() {
    let exe = env!("CARGO_BIN_EXE_clew");
    let mut bytes = std::fs::read(exe).unwrap();
    let (off, size) = {
        let file = object::File::parse(&*bytes).unwrap();
        file.section_by_name(".eh_frame")
            .unwrap()
            .file_range()
            .unwrap()
    };
    // Make the second record's length field run past the section.
    let first =
        u32::from_le_bytes(bytes[off as usize..off as usize + 4].try_into().unwrap()) as u64;
    let second = (off + 4 + first) as usize;
    assert!(second as u64 + 4 < off + size);
    bytes[second..second + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let damaged =
        std::env::temp_dir().join(format!("clew-eh-frame-damaged-{}", std::process::id()));
    std::fs::write(&damaged, &bytes).unwrap();
    let o = clew(&["eh-frame", "--check", damaged.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("problem: unparsable entry"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_file(damaged);
}
