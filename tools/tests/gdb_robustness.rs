//! A raw RSP client against `clew run --gdb`: line noise, bad checksums, oversize and
//! malformed packets, and a client that vanishes mid-packet leave the target stopped
//! and the stub serving — the real gdb that connects next still gets its backtrace and
//! runs the program to the end.

mod gdb_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use gdb_common::*;

/// `$payload#cc`
fn packet(payload: &[u8]) -> Vec<u8> {
    let sum = payload.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    let mut p = vec![b'$'];
    p.extend_from_slice(payload);
    p.extend_from_slice(format!("#{sum:02x}").as_bytes());
    p
}

struct Client {
    s: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        // Only so that a broken stub fails the test instead of hanging it.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { s }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn byte(&mut self) -> u8 {
        let mut b = [0u8];
        self.s
            .read_exact(&mut b)
            .expect("the stub stopped answering");
        b[0]
    }

    /// The next packet's payload (acks before it are returned separately).
    fn reply(&mut self) -> (Vec<u8>, Vec<u8>) {
        let mut acks = Vec::new();
        loop {
            match self.byte() {
                b'$' => break,
                b => acks.push(b),
            }
        }
        let mut payload = Vec::new();
        loop {
            match self.byte() {
                b'#' => break,
                b => payload.push(b),
            }
        }
        let hi = self.byte();
        let lo = self.byte();
        let sum = payload.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        assert_eq!(
            format!("{sum:02x}").as_bytes(),
            [hi, lo],
            "bad checksum from the stub"
        );
        (acks, payload)
    }
}

#[test]
fn protocol_errors_and_a_vanished_client_leave_the_stub_serving() {
    let module = wat_file("robust.wat", NESTED);
    let mut target = Target::start("tcp:127.0.0.1:0", &module);

    let mut c = Client::connect(&target.addr);
    // Line noise between packets, then a register read: answered normally.
    c.send(b"hello\x00\xff\r\n+++");
    c.send(&packet(b"g"));
    let (acks, regs) = c.reply();
    assert_eq!(acks, b"+");
    // (gdbstub may run-length encode: just not tiny.)
    assert!(regs.len() >= 64, "short g reply: {}", regs.len());
    assert!(
        !regs.starts_with(b"E"),
        "{}",
        String::from_utf8_lossy(&regs)
    );

    // A bad checksum: `-` (send it again); the retransmission is answered.
    c.send(b"$g#00");
    assert_eq!(c.byte(), b'-');
    c.send(&packet(b"g"));
    let (_, again) = c.reply();
    assert_eq!(again, regs, "same stop, same registers");

    // Noise inside a packet: a `$` restarts it.
    c.send(b"$m12$");
    c.send(&packet(b"g")[1..]);
    let (_, again) = c.reply();
    assert_eq!(again, regs);

    // Oversize (past the advertised PacketSize): refused with `-`, then served.
    let mut big = b"X1000,40000:".to_vec();
    big.extend(std::iter::repeat_n(b'A', 0x40000));
    c.send(&packet(&big));
    assert_eq!(c.byte(), b'-');

    // Malformed commands: an error reply, and the session goes on.
    c.send(&packet(b"mzz,q"));
    let (_, e) = c.reply();
    assert!(e.starts_with(b"E"), "{}", String::from_utf8_lossy(&e));
    // An unmapped read is an error packet, never a fault in the target.
    c.send(&packet(b"m0,8"));
    let (_, e) = c.reply();
    assert!(e.starts_with(b"E"), "{}", String::from_utf8_lossy(&e));
    c.send(&packet(b"g"));
    let (_, again) = c.reply();
    assert_eq!(again, regs);

    // Vanish halfway through a packet.
    c.send(b"$qSupported:multiprocess+;swbre");
    drop(c);
    assert!(target.alive(), "the target died with its client");

    // Another raw client, gone without a word.
    drop(Client::connect(&target.addr));

    // A real gdb killed (SIGKILL) while attached (waiting inside gdb itself, so no
    // child of it outlives the kill).
    let log = module.with_file_name("killed-gdb.log");
    let mut victim = std::process::Command::new("gdb")
        .args(["-q", "-nx", "-batch", "-ex", "set remotetimeout 60"])
        .args(["-ex", &format!("target remote {}", target.addr)])
        .args(["-ex", "echo ATTACHED\\n"])
        .args(["-ex", "python import time; time.sleep(120)"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("ATTACHED")
    {
        assert!(std::time::Instant::now() < deadline, "gdb never attached");
        std::thread::sleep(Duration::from_millis(50));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert!(target.alive(), "the target died with its gdb");

    // The next gdb gets the same stop, names the JIT frames, and runs to the end.
    let out = gdb(&target.addr, &["bt", "continue"]);
    let names: Vec<String> = jit_frames(&parse_gdb_bt(&out))
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| ["a", "b", "c", "main"].contains(&n.as_str()))
        .collect();
    assert_eq!(names, ["c", "b", "a", "main"], "{out}");
    assert!(out.contains("exited normally"), "{out}");
    let (status, stdout, _) = target.finish();
    assert_eq!(status, Some(0));
    assert_eq!(stdout.trim(), "53");
}
