//! gdb over a pseudo-terminal (`target remote /dev/pts/N`): a serial line on the host.
//!
//! The stub holds the master and keeps the slave open itself, in raw mode, so that the
//! line exists before gdb opens it and survives gdb closing it (like a UART, a pty has
//! no connections: the next gdb simply starts talking).

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::string::String;

use crate::transport::{Closed, Transport};

pub struct PtyTransport {
    master: File,
    _slave: File,
    path: String,
}

impl PtyTransport {
    /// Opens a new pty pair.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain libc calls on a descriptor this function owns; `ptsname_r`
        // writes a NUL-terminated path into the buffer it is given.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if m < 0 {
                return Err(io::Error::last_os_error());
            }
            let master = File::from_raw_fd(m);
            if libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut name = [0 as libc::c_char; 128];
            if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let path = CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
            let s = libc::open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if s < 0 {
                return Err(io::Error::last_os_error());
            }
            let slave = File::from_raw_fd(s);
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(s, &mut t) == 0 {
                libc::cfmakeraw(&mut t);
                libc::tcsetattr(s, libc::TCSANOW, &t);
            }
            Ok(PtyTransport {
                master,
                _slave: slave,
                path,
            })
        }
    }

    /// The slave's path (`/dev/pts/N`): what gdb opens.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn master_fd(&self) -> i32 {
        self.master.as_raw_fd()
    }
}

impl Transport for PtyTransport {
    fn connect(&mut self) -> Result<(), Closed> {
        Ok(())
    }

    fn drain(&mut self) {
        // Bytes the slave side (gdb) has not read yet; give it up to two seconds.
        for _ in 0..200 {
            let mut pending: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            let r = unsafe { libc::ioctl(self._slave.as_raw_fd(), libc::FIONREAD, &mut pending) };
            if r != 0 || pending == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Then gdb's acknowledgment: it writes `+` after reading, and reports the line
        // closed if the write fails because the pty went away first.
        let mut p = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 1000) } == 1 {
            let mut b = [0u8; 64];
            let _ = self.master.read(&mut b);
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        loop {
            match self.master.read(buf) {
                Ok(0) => return Err(Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Closed),
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        self.master.write_all(bytes).map_err(|_| Closed)
    }

    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        let mut p = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        if unsafe { libc::poll(&mut p, 1, 0) } != 1 {
            return Ok(0);
        }
        self.read(buf)
    }
}
