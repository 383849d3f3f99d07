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

    /// Relays in background threads, from QEMU's connection on.
    pub fn start(self) {
        std::thread::spawn(move || {
            let Ok((uart, _)) = self.listener.accept() else {
                return;
            };
            match self.front {
                Front::Tcp(l) => relay_tcp(uart, l),
                Front::Pty { master, .. } => relay_pty(uart, master),
            }
        });
    }
}

fn relay_tcp(uart: UnixStream, listener: TcpListener) {
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
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            if to_uart.write_all(&buf[..n]).is_err() {
                return;
            }
        }
        *current.lock().unwrap() = None;
    }
}

fn relay_pty(uart: UnixStream, master: std::fs::File) {
    let (Ok(mut from_uart), Ok(mut to_pty)) = (uart.try_clone(), master.try_clone()) else {
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
    loop {
        match from_pty.read(&mut buf) {
            Ok(n @ 1..) => {
                if to_uart.write_all(&buf[..n]).is_err() {
                    return;
                }
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
