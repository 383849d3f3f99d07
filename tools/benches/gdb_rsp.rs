//! The gdb stub against gdbserver, serving the same program stopped, over TCP and over a
//! pty: round trip of one `m` packet (8 bytes of stack) and a 1 MiB memory read in the
//! largest `m` packets the server accepts (what gdb's `dump binary memory` sends).
//!
//! The stub serves `clew run --gdb … nested.wat` stopped at its `clew.breakpoint`;
//! gdbserver serves `clew run nested.wat` stopped at its first instruction (the same
//! executable mapped). One raw RSP client, shared by both, does what gdb does: `+`,
//! `qSupported`, `QStartNoAckMode` (acknowledgments stay on when the server declines:
//! the stub keeps them on a pty), then the reads.
//!
//! `cargo bench -p clew --bench gdb_rsp` (needs gdbserver: `apt-get install gdbserver`).
//! Not run by CI. Prints one table; BENCHMARKS.md part 5 records it.

use std::ffi::CStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const NESTED: &str = r#"(module $nested
  (import "clew" "breakpoint" (func $breakpoint))
  (func $main (export "main") (result i32) (call $a (i32.const 5)))
  (func $a (param i32) (result i32) (i32.add (call $b (local.get 0)) (i32.const 1)))
  (func $b (param i32) (result i32) (i32.mul (call $c (local.get 0)) (i32.const 2)))
  (func $c (param i32) (result i32) (call $breakpoint) (i32.add (local.get 0) (i32.const 10))))"#;

const ROUND_TRIPS: usize = 21 * 500;
const DUMP: u64 = 1 << 20;
const ROUNDS: usize = 21;

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A raw RSP client.
struct Rsp {
    r: BufReader<Box<dyn Stream>>,
    ack: bool,
    packet_size: usize,
}

impl Rsp {
    fn new(s: Box<dyn Stream>) -> Rsp {
        let mut rsp = Rsp {
            r: BufReader::with_capacity(1 << 16, s),
            ack: true,
            packet_size: 0x3fff,
        };
        rsp.r.get_mut().write_all(b"+").unwrap();
        let sup = rsp.cmd(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+");
        let sup = String::from_utf8_lossy(&sup).into_owned();
        if let Some(p) = sup.split(';').find_map(|f| f.strip_prefix("PacketSize=")) {
            rsp.packet_size = usize::from_str_radix(p, 16).unwrap();
        }
        if sup.contains("QStartNoAckMode+") && rsp.cmd(b"QStartNoAckMode") == b"OK" {
            rsp.ack = false;
        }
        // As gdb does: the stop reason (gdbserver selects its thread here).
        rsp.cmd(b"?");
        rsp
    }

    /// A client with nothing behind it (its connection handed over to gdb).
    fn closed() -> Rsp {
        Rsp {
            r: BufReader::new(Box::new(std::io::Cursor::new(Vec::new()))),
            ack: false,
            packet_size: 0x4000,
        }
    }

    fn send(&mut self, payload: &[u8]) {
        let sum = payload.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        let mut p = Vec::with_capacity(payload.len() + 4);
        p.push(b'$');
        p.extend_from_slice(payload);
        p.extend_from_slice(format!("#{sum:02x}").as_bytes());
        self.r.get_mut().write_all(&p).unwrap();
    }

    fn byte(&mut self) -> u8 {
        let mut b = [0u8];
        self.r.read_exact(&mut b).expect("server went away");
        b[0]
    }

    fn recv(&mut self) -> Vec<u8> {
        while self.byte() != b'$' {}
        let mut body = Vec::new();
        self.r.read_until(b'#', &mut body).unwrap();
        body.pop();
        self.byte();
        self.byte();
        if self.ack {
            self.r.get_mut().write_all(b"+").unwrap();
        }
        // Run-length encoding: `c*N` repeats c N - 29 more times.
        if body.contains(&b'*') {
            let mut out = Vec::with_capacity(body.len() * 2);
            let mut i = 0;
            while i < body.len() {
                if body[i] == b'*' && i + 1 < body.len() {
                    let prev = *out.last().unwrap();
                    out.extend(std::iter::repeat_n(prev, (body[i + 1] - 29) as usize));
                    i += 2;
                } else {
                    out.push(body[i]);
                    i += 1;
                }
            }
            return out;
        }
        body
    }

    fn cmd(&mut self, payload: &[u8]) -> Vec<u8> {
        self.send(payload);
        self.recv()
    }

    /// rsp from `g` (gdb's amd64 order: rax rbx rcx rdx rsi rdi rbp rsp …).
    fn rsp(&mut self) -> u64 {
        let g = self.cmd(b"g");
        if g.len() < 8 * 16 {
            panic!("g reply: {:?}", String::from_utf8_lossy(&g));
        }
        let hex = std::str::from_utf8(&g[7 * 16..8 * 16]).unwrap();
        if u64::from_str_radix(hex, 16).is_err() {
            panic!("g reply: {:?}", String::from_utf8_lossy(&g));
        }
        u64::from_str_radix(hex, 16).unwrap().swap_bytes()
    }

    fn read(&mut self, addr: u64, len: usize) -> usize {
        let r = self.cmd(format!("m{addr:x},{len:x}").as_bytes());
        assert!(!r.starts_with(b"E"), "read {addr:#x},{len} failed");
        r.len() / 2
    }
}

/// A new pty pair: (master, slave path, the slave opened raw). gdbserver sets the line
/// raw only once it opens it: before that the tty would echo what the client sends.
fn pty() -> (File, String, File) {
    // SAFETY: plain libc pty setup on descriptors owned here.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let path = CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
        let slave = open_raw(&path);
        (File::from_raw_fd(m), path, slave)
    }
}

/// Opens a pty slave raw (the client side of the stub's pty).
fn open_raw(path: &str) -> File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: termios calls on the descriptor just opened.
    unsafe {
        use std::os::fd::AsRawFd;
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(f.as_raw_fd(), &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t);
    }
    f
}

/// The start of the executable's text mapping in process `pid` (1 MiB of it is read).
fn text_of(pid: u32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    for l in maps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 6 && f[1] == "r-xp" && f[5].ends_with("/clew") {
            let (a, b) = f[0].split_once('-').unwrap();
            let (a, b) = (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            );
            assert!(b - a >= DUMP);
            return a;
        }
    }
    panic!("no text mapping of clew in {pid}")
}

struct Server {
    child: Child,
    /// Where gdb connects (TCP).
    addr: Option<String>,
    /// The pty slave held open (gdbserver on a pty).
    _slave: Option<File>,
    /// The process whose memory is read.
    inferior: u32,
    client: Rsp,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // gdbserver's inferior.
        // SAFETY: signals a process this bench started.
        unsafe { libc::kill(self.inferior as i32, libc::SIGKILL) };
    }
}

fn stub(module: &str, pty_mode: bool) -> Server {
    let spec = if pty_mode { "pty" } else { "tcp:127.0.0.1:0" };
    let mut child = Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(["run", "--gdb", spec, module])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut addr = None;
    let s: Box<dyn Stream> = if pty_mode {
        let path = &line[line.find("/dev/pts/").unwrap()..];
        Box::new(open_raw(path.split_whitespace().next().unwrap()))
    } else {
        let a = line[line.find("tcp ").unwrap() + 4..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        let s = TcpStream::connect(&a).unwrap();
        s.set_nodelay(true).unwrap();
        addr = Some(a);
        Box::new(s)
    };
    let inferior = child.id();
    Server {
        child,
        addr,
        _slave: None,
        inferior,
        client: Rsp::new(s),
    }
}

fn gdbserver(module: &str, pty_mode: bool) -> Server {
    let (comm, master, slave) = if pty_mode {
        let (m, path, slave) = pty();
        (path, Some(m), Some(slave))
    } else {
        ("127.0.0.1:0".to_owned(), None, None)
    };
    let mut child = Command::new("gdbserver")
        // Not --once: after the raw client, gdb itself connects (TCP).
        .args([&comm, env!("CARGO_BIN_EXE_clew"), "run", module])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdbserver (apt-get install gdbserver)");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut inferior = 0u32;
    let mut port = None;
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        if let Some(p) = line.trim().strip_prefix("Process ")
            && let Some(pid) = p.split("pid = ").nth(1)
        {
            inferior = pid.trim().parse().unwrap();
            if pty_mode {
                break;
            }
        }
        if let Some(p) = line.trim().strip_prefix("Listening on port ") {
            port = Some(p.parse::<u16>().unwrap());
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let s: Box<dyn Stream> = match master {
        Some(m) => Box::new(m),
        None => {
            let s = TcpStream::connect(("127.0.0.1", port.unwrap())).unwrap();
            s.set_nodelay(true).unwrap();
            Box::new(s)
        }
    };
    Server {
        child,
        addr: port.map(|p| format!("127.0.0.1:{p}")),
        _slave: slave,
        inferior,
        client: Rsp::new(s),
    }
}

/// gdb's own `dump binary memory` of 1 MiB of text, timed inside gdb (python), the
/// median of 5 in one session: MiB/s.
fn gdb_dump(addr: &str, base: u64) -> f64 {
    let out = std::env::temp_dir().join(format!("clew-gdb-bench-dump-{}", std::process::id()));
    let script = format!(
        "python import time\n\
         python ts = []\n\
         python exec(\"for i in range(5):\\n t = time.perf_counter()\\n gdb.execute('dump binary memory {} {base:#x} {:#x}')\\n ts.append(time.perf_counter() - t)\")\n\
         python ts.sort(); print('DUMP_SECONDS', ts[2])\n",
        out.display(),
        base + DUMP
    );
    let script_path = out.with_extension("gdb");
    std::fs::write(&script_path, script).unwrap();
    let o = Command::new("gdb")
        .args([
            "-q",
            "-nx",
            "-batch",
            "-ex",
            &format!("target remote {addr}"),
        ])
        .arg("-x")
        .arg(&script_path)
        // Leave the program stopped for the next session.
        .args(["-ex", "disconnect"])
        .stdin(Stdio::null())
        .output()
        .expect("gdb");
    let text = String::from_utf8_lossy(&o.stdout);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&script_path);
    let secs: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("DUMP_SECONDS "))
        .unwrap_or_else(|| {
            panic!(
                "gdb dump failed:\n{text}{}",
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .trim()
        .parse()
        .unwrap();
    1.0 / secs
}

/// Nanoseconds process `pid`'s main thread has run on a CPU (`/proc/PID/schedstat`):
/// the server's own cost, which other load on the machine does not inflate.
fn cpu_ns(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// One `m` round trip (8 bytes of stack), mean over `n` packets: (wall µs, server CPU µs).
fn round_trip(server: &mut Server, n: usize) -> (f64, f64) {
    let pid = server.child.id();
    let c = &mut server.client;
    let sp = c.rsp();
    let cpu = cpu_ns(pid);
    let t = Instant::now();
    for _ in 0..n {
        c.read(sp, 8);
    }
    let wall = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    (wall, (cpu_ns(pid) - cpu) as f64 / 1e3 / n as f64)
}

/// gdb's largest read: (PacketSize - 32) / 2 bytes of data per reply, hex-encoded.
fn chunk(server: &Server) -> usize {
    (server.client.packet_size - 32) / 2
}

/// One 1 MiB read of the executable's text in the largest `m` packets: (wall MiB/s,
/// server CPU ms).
fn dump(server: &mut Server) -> (f64, f64) {
    let chunk = chunk(server);
    let base = text_of(server.inferior);
    let pid = server.child.id();
    let c = &mut server.client;
    let cpu = cpu_ns(pid);
    let t = Instant::now();
    let mut done = 0u64;
    while done < DUMP {
        let n = chunk.min((DUMP - done) as usize);
        done += c.read(base + done, n) as u64;
    }
    (
        1.0 / t.elapsed().as_secs_f64(),
        (cpu_ns(pid) - cpu) as f64 / 1e6,
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("clew-gdb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("nested.wat");
    std::fs::write(&module, NESTED).unwrap();
    let module = module.to_str().unwrap();

    println!(
        "| transport | server | m round trip: wall µs | server CPU µs per m | 1 MiB read: wall MiB/s | server CPU ms per MiB | bytes per m | acks |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for pty_mode in [false, true] {
        let transport = if pty_mode { "pty" } else { "TCP" };
        let mut servers = [
            ("clew stub", stub(module, pty_mode)),
            ("gdbserver 13.1", gdbserver(module, pty_mode)),
        ];
        for (_, s) in servers.iter_mut() {
            round_trip(s, 200);
            dump(s);
        }
        // Interleaved rounds: load from other processes hits both alike. Medians.
        let mut m = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; 2];
        for _ in 0..ROUNDS {
            for (k, (_, s)) in servers.iter_mut().enumerate() {
                let (w, c) = round_trip(s, ROUND_TRIPS / ROUNDS);
                m[k][0].push(w);
                m[k][1].push(c);
                let (w, c) = dump(s);
                m[k][2].push(w);
                m[k][3].push(c);
            }
        }
        let med: Vec<[f64; 4]> = m
            .iter_mut()
            .map(|v| {
                [
                    median(&mut v[0]),
                    median(&mut v[1]),
                    median(&mut v[2]),
                    median(&mut v[3]),
                ]
            })
            .collect();
        for (k, (name, s)) in servers.iter().enumerate() {
            println!(
                "| {transport} | {name} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} |",
                med[k][0],
                med[k][1],
                med[k][2],
                med[k][3],
                chunk(s),
                if s.client.ack { "on" } else { "off" }
            );
        }
        println!(
            "| {transport} | stub ÷ gdbserver | {:.2}× | {:.2}× | {:.2}× | {:.2}× | | |",
            med[0][0] / med[1][0],
            med[0][1] / med[1][1],
            med[0][2] / med[1][2],
            med[0][3] / med[1][3]
        );
        if !pty_mode {
            // The real gdb's `dump binary memory` (TCP only: gdb cannot be the other end
            // of gdbserver's pty), interleaved sessions, median.
            let mut targets = Vec::new();
            for (_, s) in servers.iter_mut() {
                targets.push((text_of(s.inferior), s.addr.clone().unwrap()));
                // Hand the connection over to gdb.
                s.client = Rsp::closed();
            }
            let mut dumps = [Vec::new(), Vec::new()];
            for _ in 0..3 {
                for (k, (base, addr)) in targets.iter().enumerate() {
                    dumps[k].push(gdb_dump(addr, *base));
                }
            }
            let med: Vec<f64> = dumps.iter_mut().map(|v| median(v)).collect();
            for (k, (name, _)) in servers.iter().enumerate() {
                println!(
                    "| TCP, gdb `dump binary memory` 1 MiB | {name} | | | {:.1} | | | |",
                    med[k]
                );
            }
            println!(
                "| TCP, gdb `dump binary memory` | stub ÷ gdbserver | | | {:.2}× | | | |",
                med[0] / med[1]
            );
        }
    }
}
