//! C++ programs (compiled with g++ here) run with clew preloaded as their unwinder:
//! `LD_PRELOAD=libclew_unwind.so`. Each check of `cpp/exceptions.cpp` must pass under
//! libgcc and under clew; the dynamic linker must bind libstdc++'s
//! `_Unwind_RaiseException` to clew; and `_Unwind_Backtrace` must report the same frames
//! under both.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/deps/libclew_unwind.so`, built with this package's tests (cargo
/// refreshes the copy in `target/<profile>/` only for a plain `cargo build`).
fn preload_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libclew_unwind.so");
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

fn build_program() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cpp");
    let out = std::env::temp_dir().join(format!("clew-cpp-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd
            .output()
            .expect("g++/gcc must be installed (Debian: g++)");
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let c_obj = out.join("c_frames.o");
    run(Command::new("gcc")
        .args(["-O1", "-g", "-fexceptions", "-c"])
        .arg(src.join("c_frames.c"))
        .arg("-o")
        .arg(&c_obj));
    run(Command::new("g++")
        .args(["-O1", "-g", "-shared", "-fPIC"])
        .arg(src.join("thrower.cpp"))
        .arg("-o")
        .arg(out.join("libthrower.so")));
    let exe = out.join("exceptions");
    run(Command::new("g++")
        .args(["-O1", "-g"])
        .arg(src.join("exceptions.cpp"))
        .arg(&c_obj)
        .args(["-pthread", "-ldl", "-o"])
        .arg(&exe));
    exe
}

fn run(
    exe: &Path,
    preload: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (String, String) {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        o.status.success(),
        "{exe:?} {args:?} preload={preload:?} failed: {out}\n{err}"
    );
    (out, err)
}

#[test]
fn cpp_exceptions_with_clew_preloaded() {
    let exe = build_program();
    let lib = preload_lib();
    let thrower = exe.with_file_name("libthrower.so");
    let thrower = thrower.to_str().unwrap();
    let (reference, _) = run(&exe, None, &[], &[("CLEW_THROWER", thrower)]);
    assert!(
        reference.contains("ok through-dlopened-library"),
        "{reference}"
    );
    assert!(reference.ends_with("ALL OK\n"), "under libgcc: {reference}");
    let (clew, _) = run(&exe, Some(&lib), &[], &[("CLEW_THROWER", thrower)]);
    assert_eq!(
        clew, reference,
        "every check passes with clew as the unwinder"
    );

    let (_, bindings) = run(&exe, Some(&lib), &[], &[("LD_DEBUG", "bindings")]);
    let bound = bindings.lines().any(|l| {
        l.contains("libstdc++")
            && l.contains("libclew_unwind.so")
            && l.contains("`_Unwind_RaiseException'")
    });
    assert!(
        bound,
        "libstdc++'s _Unwind_RaiseException is not bound to clew"
    );

    let (a, _) = run(&exe, None, &["backtrace"], &[]);
    let (b, _) = run(&exe, Some(&lib), &["backtrace"], &[]);
    assert!(a.lines().count() >= 25, "{a}");
    assert!(
        a.contains("libc.so.6"),
        "the signal trampoline and libc frames are walked: {a}"
    );
    assert_eq!(a, b, "_Unwind_Backtrace: libgcc vs clew");
}
