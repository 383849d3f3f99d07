//! A JIT module registered while gdb is attached: at the next stop the stub sends a
//! `library` stop first, gdb re-reads the library list (and resumes by itself), then
//! the real stop arrives — and `info sharedlibrary` lists the new module. The test
//! process is the target: its thread stops in the SIGTRAP handler while another thread
//! runs the real gdb.

use std::process::{Command, Stdio};

use clew_gdbstub_bridge::Config;
use clew_gdbstub_bridge::host::{self, TcpTransport};
use clew_unwinder::{ModuleDesc, ModuleKind, Symbol, SymbolMap};

/// One page of code (`ret`s) mapped read+execute, like a JIT's.
fn jit_page() -> std::ops::Range<usize> {
    // SAFETY: a fresh anonymous mapping, filled, then made executable.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_bytes(p.cast::<u8>(), 0xc3, 4096);
        assert_eq!(
            libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC),
            0
        );
        p as usize..p as usize + 4096
    }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).map_or(0, |i| i + a.len());
    let j = s[i..].find(b).map_or(s.len(), |j| i + j);
    &s[i..j]
}

#[test]
fn a_module_registered_while_attached_reaches_gdb() {
    let t = TcpTransport::bind("127.0.0.1:0").unwrap();
    let addr = t.local_addr().unwrap().to_string();
    let mut config = Config::new(clew_unwinder::global());
    config.no_ack = true;
    host::install(Box::new(t), config).unwrap();

    let gdb = std::thread::spawn(move || {
        let out = Command::new("gdb")
            .args(["-q", "-nx", "-batch", "-ex", "set remotetimeout 60"])
            .args(["-ex", &format!("target remote {addr}")])
            .args(["-ex", "echo <BEFORE>\\n", "-ex", "info sharedlibrary"])
            .args(["-ex", "continue"])
            .args(["-ex", "echo <AFTER>\\n", "-ex", "info sharedlibrary"])
            .args(["-ex", "set language c", "-ex", "info symbol late_function"])
            .args(["-ex", "detach"])
            .stdin(Stdio::null())
            .output()
            .expect("gdb (apt-get install gdb)");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        s
    });

    // First stop: gdb attaches and lists what is loaded.
    host::breakpoint();

    // A new JIT module while gdb waits for the next stop.
    let text = jit_page();
    let eh_frame: &'static [u8] = &[0, 0, 0, 0];
    let desc = ModuleDesc {
        name: "late_jit",
        kind: ModuleKind::Jit,
        text: Some(text.clone()),
        eh_frame,
        eh_frame_hdr: None,
        lsda: None,
    };
    let symbols = SymbolMap::new(
        vec![Symbol {
            range: text.start..text.start + 16,
            name: "late_function".into(),
        }],
        Vec::new(),
    );
    // SAFETY: `eh_frame` is static; the module stays registered for the process.
    let _handle = unsafe { clew_unwinder::global().register_with_symbols(&desc, symbols) }
        .expect("registering the late module");

    // Second stop: gdb hears about the module before the stop itself.
    host::breakpoint();

    let out = gdb.join().unwrap();
    // `info sharedlibrary` rows (gdb's "Reading …" lines come and go in between).
    let table = |s: &str| -> String {
        s.lines()
            .filter(|l| l.starts_with("0x") && l.contains("target:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = table(between(&out, "<BEFORE>", "<AFTER>"));
    let after = out.split("<AFTER>").nth(1).unwrap_or("");
    assert!(
        before.contains("/clew/jit/") || before.contains("libc"),
        "{out}"
    );
    assert!(!before.contains("late_jit"), "{out}");
    assert!(
        after.contains("/clew/jit/") && after.contains("late_jit"),
        "{out}"
    );
    assert!(after.contains("late_function in section .text"), "{out}");
    assert!(out.contains("detached"), "{out}");
}
