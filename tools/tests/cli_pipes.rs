//! A reader that stops early (`clew eh-frame -v FILE | head`) ends clew quietly: no
//! error message, no backtrace. Other errors are one `clew: ...` line, exit status 1.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_clew");

#[test]
fn a_closed_pipe_ends_clew_quietly() {
    let mut child = Command::new(BIN)
        .args(["eh-frame", "-v", BIN])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The read end is dropped here; clew's next writes fail with EPIPE.
    assert!(first.contains("cie@"), "{first}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(err.is_empty(), "{err}");
}

#[test]
fn other_errors_are_one_line() {
    let o = Command::new(BIN)
        .args(["eh-frame", "/nonexistent/file"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("clew: ") && err.contains("/nonexistent/file"),
        "{err}"
    );
}
