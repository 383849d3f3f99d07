//! `clew qemu --gdb tcp:HOST:PORT|pty`: connects gdb to the kernel's gdb stub on COM3.
//!
//! QEMU's COM3 is a unix-socket chardev that QEMU connects to at startup (this side
//! listens first): deterministic, unlike a QEMU pty, which needs about a second before
//! QEMU notices its peer, and drops what the kernel sends before. This side relays the
//! socket to gdb's end: a TCP listener (one gdb at a time; the next one is accepted when
//! it leaves) or a pty this side opens (`target remote /dev/pts/N`). What the kernel
//! sends while no gdb is connected is dropped (a new gdb asks for the stop itself).
//!
//! The kernel side (tools/kernel/src/gdb) serves everything: registers, memory, the
//! kernel's ELF file and the JIT modules' images as libraries, `monitor` commands.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};

/// gdb's end of the link.
enum Front {
    Tcp(TcpListener),
    Pty {
        master: std::fs::File,
        slave: PathBuf,
        _keep: std::fs::File,
    },
}

/// The relay between QEMU's COM3 socket and gdb, before QEMU starts.
pub struct GdbLink {
    /// The unix socket QEMU's COM3 connects to.
    pub socket: PathBuf,
    listener: UnixListener,
    front: Front,
}

impl GdbLink {
    /// Listens on `dir/gdb.sock` for QEMU and on `spec` (`tcp:HOST:PORT`, `pty`) for gdb.
    pub fn new(spec: &str, dir: &Path) -> Result<GdbLink> {
        let front = if let Some(addr) = spec.strip_prefix("tcp:") {
            Front::Tcp(TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?)
        } else if spec == "pty" {
            open_pty()?
        } else {
            bail!("bad --gdb {spec:?}: tcp:HOST:PORT or pty");
        };
        let socket = dir.join("gdb.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        Ok(GdbLink {
            socket,
            listener,
            front,
        })
    }

    /// What gdb connects to: `HOST:PORT` or the pty's path.
    pub fn address(&self) -> String {
        match &self.front {
            Front::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Front::Pty { slave, .. } => slave.display().to_string(),
        }
    }

    /// Relays in background threads, from QEMU's connection on; `kernel` (the ELF
    /// file QEMU boots) answers gdb's reads of it here ([`ExecServer`]).
    pub fn start(self, kernel: Option<Vec<u8>>) {
        std::thread::spawn(move || {
            let Ok((uart, _)) = self.listener.accept() else {
                return;
            };
            let server = ExecServer::new(kernel);
            match self.front {
                Front::Tcp(l) => relay_tcp(uart, l, server),
                Front::Pty { master, .. } => relay_pty(uart, master, server),
            }
        });
    }
}

fn relay_tcp(uart: UnixStream, listener: TcpListener, mut server: ExecServer) {
    let current: Arc<Mutex<Option<TcpStream>>> = Arc::default();
    let Ok(mut from_uart) = uart.try_clone() else {
        return;
    };
    let to_gdb = current.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_uart.read(&mut buf) {
            if let Some(gdb) = to_gdb.lock().unwrap().as_mut()
                && gdb.write_all(&buf[..n]).is_err()
            {
                let _ = gdb.shutdown(std::net::Shutdown::Both);
            }
        }
        // QEMU is gone: so is the target.
        if let Some(gdb) = to_gdb.lock().unwrap().take() {
            let _ = gdb.shutdown(std::net::Shutdown::Both);
        }
    });
    let mut to_uart = uart;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        let Ok(clone) = conn.try_clone() else {
            continue;
        };
        *current.lock().unwrap() = Some(clone);
        server.packet.clear();
        let mut buf = [0u8; 4096];
        let (mut to_kernel, mut to_gdb) = (Vec::new(), Vec::new());
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            server.feed(&buf[..n], &mut to_kernel, &mut to_gdb);
            if to_uart.write_all(&to_kernel).is_err() {
                return;
            }
            if !to_gdb.is_empty() && conn.write_all(&to_gdb).is_err() {
                break;
            }
            to_kernel.clear();
            to_gdb.clear();
        }
        *current.lock().unwrap() = None;
    }
}

fn relay_pty(uart: UnixStream, master: std::fs::File, mut server: ExecServer) {
    let (Ok(mut from_uart), Ok(mut to_pty), Ok(mut answers)) =
        (uart.try_clone(), master.try_clone(), master.try_clone())
    else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_uart.read(&mut buf) {
            let _ = to_pty.write_all(&buf[..n]);
        }
    });
    let (mut from_pty, mut to_uart) = (master, uart);
    let mut buf = [0u8; 4096];
    let (mut to_kernel, mut to_gdb) = (Vec::new(), Vec::new());
    loop {
        match from_pty.read(&mut buf) {
            Ok(n @ 1..) => {
                server.feed(&buf[..n], &mut to_kernel, &mut to_gdb);
                if to_uart.write_all(&to_kernel).is_err() {
                    return;
                }
                let _ = answers.write_all(&to_gdb);
                to_kernel.clear();
                to_gdb.clear();
            }
            // EIO: no gdb has the pty open (we keep one slave fd, so rarely): wait.
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// A pty in raw mode: the master for the relay, the slave's path for gdb (one slave
/// descriptor stays open here, so a gdb closing it does not hang up the line).
fn open_pty() -> Result<Front> {
    use std::os::fd::FromRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // SAFETY: plain libc calls on a descriptor this function owns; `ptsname_r` writes
    // a NUL-terminated path into the buffer.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if fd < 0 {
            bail!("posix_openpt: {}", std::io::Error::last_os_error());
        }
        let master = std::fs::File::from_raw_fd(fd);
        if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
            bail!("unlockpt: {}", std::io::Error::last_os_error());
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) != 0 {
            bail!("ptsname: {}", std::io::Error::last_os_error());
        }
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let keep = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .with_context(|| format!("opening {path}"))?;
        let mut tio: libc::termios = std::mem::zeroed();
        use std::os::fd::AsRawFd as _;
        if libc::tcgetattr(keep.as_raw_fd(), &mut tio) == 0 {
            libc::cfmakeraw(&mut tio);
            libc::tcsetattr(keep.as_raw_fd(), libc::TCSANOW, &tio);
        }
        Ok(Front::Pty {
            master,
            slave: PathBuf::from(path),
            _keep: keep,
        })
    }
}

/// The path the kernel lists its own ELF file under (tools/kernel/src/gdb/machine.rs).
pub const KERNEL_PATH: &str = "/clew/kernel/clew-kernel";

/// The host-I/O descriptor this side hands out for the kernel's file (the kernel's own
/// descriptors are small numbers).
const KERNEL_FD: u32 = 0x4b47;

/// Answers gdb's host-I/O requests for the kernel's ELF file (`vFile:open/pread/fstat/
/// close` on [`KERNEL_PATH`]) from the host's copy, so that those bytes do not cross the
/// emulated UART: QEMU's 16550 hands the chardev one byte per `write`, and gdb reads most
/// of the 14 MB file at its first connection (half a minute over the UART). Everything
/// else, and any packet with a bad checksum, goes to the kernel unchanged; the kernel
/// serves the same file if this side does not (`--gdb` without a host file).
pub struct ExecServer {
    /// `None`: the kernel serves its file itself.
    file: Option<Vec<u8>>,
    path_hex: String,
    /// The packet being received (`$` … `#xx`), or empty between packets.
    packet: Vec<u8>,
}

impl ExecServer {
    pub fn new(file: Option<Vec<u8>>) -> ExecServer {
        let path_hex = KERNEL_PATH.bytes().map(|b| format!("{b:02x}")).collect();
        ExecServer {
            file,
            path_hex,
            packet: Vec::new(),
        }
    }

    /// Takes bytes from gdb: what goes on to the kernel, and answers for gdb.
    pub fn feed(&mut self, data: &[u8], to_kernel: &mut Vec<u8>, to_gdb: &mut Vec<u8>) {
        for &b in data {
            if self.packet.is_empty() {
                if b == b'$' {
                    self.packet.push(b);
                } else {
                    to_kernel.push(b);
                }
                continue;
            }
            if b == b'$' {
                // A new packet before the last one ended: the kernel resynchronizes.
                to_kernel.append(&mut self.packet);
                self.packet.push(b);
                continue;
            }
            self.packet.push(b);
            let n = self.packet.len();
            if n >= 4 && self.packet[n - 3] == b'#' {
                let packet = std::mem::take(&mut self.packet);
                match self.answer(&packet) {
                    Some(reply) => {
                        to_gdb.push(b'+');
                        frame(&reply, to_gdb);
                    }
                    None => to_kernel.extend_from_slice(&packet),
                }
            }
        }
    }

    /// The reply body for a `vFile` request on the kernel's file; `None`: not ours.
    fn answer(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let file = self.file.as_ref()?;
        let body = &packet[1..packet.len() - 3];
        let sum = std::str::from_utf8(&packet[packet.len() - 2..])
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())?;
        if body.iter().fold(0u8, |s, &b| s.wrapping_add(b)) != sum {
            return None;
        }
        let body = std::str::from_utf8(body).ok()?;
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        if let Some(args) = body.strip_prefix("vFile:open:") {
            let path = args.split(',').next()?;
            return (path.eq_ignore_ascii_case(&self.path_hex))
                .then(|| format!("F{KERNEL_FD:x}").into_bytes());
        }
        if let Some(args) = body.strip_prefix("vFile:pread:") {
            let mut it = args.split(',');
            let (fd, count, offset) = (hex(it.next()?)?, hex(it.next()?)?, hex(it.next()?)?);
            if fd != KERNEL_FD as u64 {
                return None;
            }
            let start = (offset as usize).min(file.len());
            let end = start.saturating_add(count as usize).min(file.len());
            let mut reply = format!("F{:x};", end - start).into_bytes();
            reply.extend_from_slice(&file[start..end]);
            return Some(reply);
        }
        if let Some(fd) = body.strip_prefix("vFile:fstat:") {
            if hex(fd)? != KERNEL_FD as u64 {
                return None;
            }
            // gdb's `struct stat` (big-endian): dev, ino, mode, nlink, uid, gid, rdev
            // (u32), size, blksize, blocks (u64), atime, mtime, ctime (u32).
            let size = file.len() as u64;
            let mut st = Vec::with_capacity(64);
            for v in [0u32, KERNEL_FD, 0o100444, 1, 0, 0, 0] {
                st.extend_from_slice(&v.to_be_bytes());
            }
            for v in [size, 4096, size.div_ceil(512)] {
                st.extend_from_slice(&v.to_be_bytes());
            }
            st.extend_from_slice(&[0; 12]);
            let mut reply = format!("F{:x};", st.len()).into_bytes();
            reply.extend_from_slice(&st);
            return Some(reply);
        }
        if let Some(fd) = body.strip_prefix("vFile:close:") {
            return (hex(fd)? == KERNEL_FD as u64).then(|| b"F0".to_vec());
        }
        None
    }
}

/// `$body#xx` with the binary escapes of the remote protocol (`}` then byte ^ 0x20 for
/// `#`, `$`, `}` and `*`).
fn frame(body: &[u8], out: &mut Vec<u8>) {
    out.push(b'$');
    let mut sum = 0u8;
    for &b in body {
        if matches!(b, b'#' | b'$' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
            sum = sum.wrapping_add(b'}').wrapping_add(b ^ 0x20);
        } else {
            out.push(b);
            sum = sum.wrapping_add(b);
        }
    }
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(body: &str) -> Vec<u8> {
        let mut out = Vec::new();
        frame(body.as_bytes(), &mut out);
        out
    }

    #[test]
    fn answers_the_kernel_file_and_forwards_the_rest() {
        let file: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut s = ExecServer::new(Some(file.clone()));
        let (mut k, mut g) = (Vec::new(), Vec::new());
        let open = format!("vFile:open:{},0,0", s.path_hex);
        s.feed(&packet(&open), &mut k, &mut g);
        assert!(k.is_empty());
        assert_eq!(g, [b"+".as_slice(), &packet("F4b47")].concat());
        g.clear();
        // Split across reads, with an ack before it.
        let pread = packet("vFile:pread:4b47,10,fe");
        s.feed(b"+", &mut k, &mut g);
        s.feed(&pread[..5], &mut k, &mut g);
        s.feed(&pread[5..], &mut k, &mut g);
        assert_eq!(k, b"+");
        let mut want = b"F10;".to_vec();
        want.extend_from_slice(&file[0xfe..0x10e]);
        let mut framed = vec![b'+'];
        frame(&want, &mut framed);
        assert_eq!(g, framed);
        // Not ours: another path, another descriptor, a bad checksum, other packets.
        k.clear();
        g.clear();
        for p in [
            packet("vFile:open:2f6574632f706173737764,0,0"),
            packet("vFile:pread:3,10,0"),
            packet("m1000,4"),
            b"$vFile:close:4b47#00".to_vec(),
        ] {
            s.feed(&p, &mut k, &mut g);
        }
        assert!(g.is_empty());
        assert!(k.ends_with(b"$vFile:close:4b47#00"));
        // Without a host file, everything goes to the kernel.
        let mut s = ExecServer::new(None);
        let (mut k, mut g) = (Vec::new(), Vec::new());
        s.feed(&packet(&open), &mut k, &mut g);
        assert!(g.is_empty());
        assert_eq!(k, packet(&open));
    }

    #[test]
    fn a_bad_gdb_spec_is_refused() {
        let dir = std::env::temp_dir().join(format!("clew-qemu-gdb-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for spec in ["", "bogus", "tcp:", "tcp:not-a-host:x", "udp:127.0.0.1:1"] {
            assert!(GdbLink::new(spec, &dir).is_err(), "{spec:?}");
        }
        let link = GdbLink::new("tcp:127.0.0.1:0", &dir).unwrap();
        assert!(link.address().starts_with("127.0.0.1:"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn escapes_binary_data() {
        let mut out = Vec::new();
        frame(b"a#$}*", &mut out);
        assert_eq!(&out[..10], b"$a}\x03}\x04}]}\x0a");
        assert_eq!(out[10], b'#');
    }
}
