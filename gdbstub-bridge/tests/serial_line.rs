//! The no_std transport: a `Uart` (byte in, byte out) wrapped in `SerialLine`, here over
//! a pty master standing in for the UART; the real gdb on the pty's other end, after a
//! terminal's worth of line noise on the line. The test process is the target.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Command, Stdio};

use clew_gdbstub_bridge::host;
use clew_gdbstub_bridge::{Config, SerialLine, Uart};

/// A "UART" on a pty master: one byte per read and write, as a device register would.
struct PtyUart(File);

impl Uart for PtyUart {
    fn read_byte(&mut self) -> Option<u8> {
        let mut b = [0u8];
        loop {
            match self.0.read(&mut b) {
                Ok(1) => return Some(b[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                _ => return None,
            }
        }
    }
    fn write_byte(&mut self, byte: u8) {
        let _ = self.0.write_all(&[byte]);
    }
}

/// (master, slave path, slave opened raw and kept open).
fn pty() -> (File, String, File) {
    // SAFETY: plain libc pty setup on descriptors owned here.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave.as_raw_fd(), &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
        (File::from_raw_fd(m), path, slave)
    }
}

#[test]
fn gdb_over_a_uart_after_line_noise() {
    let (master, path, mut slave) = pty();
    // Noise on the line before gdb comes: a terminal program typing into it.
    slave.write_all(b"AT\r\nhello?\x1b[0m\r\n$$$###+-").unwrap();
    let mut config = Config::new(clew_unwinder::global());
    config.no_ack = false;
    host::install(Box::new(SerialLine(PtyUart(master))), config).unwrap();

    let gdb = std::thread::spawn(move || {
        let out = Command::new("gdb")
            .args(["-q", "-nx", "-batch", "-ex", "set remotetimeout 60"])
            .args(["-ex", &format!("target remote {path}")])
            .args(["-ex", "bt 4", "-ex", "p/x $pc", "-ex", "detach"])
            .stdin(Stdio::null())
            .output()
            .expect("gdb (apt-get install gdb)");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        s
    });
    host::breakpoint();
    let out = gdb.join().unwrap();
    drop(slave);
    // gdb walked from the stub's breakpoint into this test function.
    assert!(
        out.contains("#0  clew_gdbstub_bridge::host::process::breakpoint"),
        "{out}"
    );
    assert!(
        out.contains("in gdb_over_a_uart_after_line_noise ()"),
        "{out}"
    );
    assert!(out.contains("$1 = 0x"), "{out}");
    assert!(out.contains("detached"), "{out}");
}
