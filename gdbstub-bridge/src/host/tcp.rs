//! gdb over TCP (`target remote HOST:PORT`): one connection at a time; when it closes
//! the next one is accepted.

use std::boxed::Box;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};

use std::os::fd::AsRawFd;

use super::spin::spin;
use crate::transport::{Closed, Transport};

pub struct TcpTransport {
    listener: TcpListener,
    stream: Option<TcpStream>,
    /// How long a read polls before blocking ([`super::spin`]).
    spin: std::time::Duration,
}

impl TcpTransport {
    /// Listens on `addr` (gdb connects when the target first stops).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(TcpTransport {
            listener: TcpListener::bind(addr)?,
            stream: None,
            spin: super::spin::budget(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Transport for TcpTransport {
    fn connect(&mut self) -> Result<(), Closed> {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    // Each response is one write: don't let Nagle hold it back.
                    let _ = s.set_nodelay(true);
                    self.stream = Some(s);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => return Err(Closed),
            }
        }
    }

    fn disconnect(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        let s = self.stream.as_mut().ok_or(Closed)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let fd = s.as_raw_fd();
        // With `CLEW_GDB_SPIN_US` set, poll for the next packet before blocking (off by
        // default: see `spin`). `MSG_DONTWAIT`: non-blocking for this call only.
        let polled = spin(self.spin, || {
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes; `fd` is the open
            // socket `s` owns.
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            match n {
                n if n > 0 => Some(Ok(n as usize)),
                0 => Some(Err(Closed)),
                _ => match io::Error::last_os_error().kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
                    _ => Some(Err(Closed)),
                },
            }
        });
        if let Some(r) = polled {
            return r;
        }
        loop {
            match s.read(buf) {
                Ok(0) => return Err(Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Closed),
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        let s = self.stream.as_mut().ok_or(Closed)?;
        s.write_all(bytes).map_err(|_| Closed)
    }

    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        let s = self.stream.as_mut().ok_or(Closed)?;
        s.set_nonblocking(true).map_err(|_| Closed)?;
        let r = s.read(buf);
        let _ = s.set_nonblocking(false);
        match r {
            Ok(0) => Err(Closed),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(_) => Err(Closed),
        }
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn connect(&mut self) -> Result<(), Closed> {
        (**self).connect()
    }
    fn disconnect(&mut self) {
        (**self).disconnect()
    }
    fn drain(&mut self) {
        (**self).drain()
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        (**self).read(buf)
    }
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        (**self).try_read(buf)
    }
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        (**self).write_all(bytes)
    }
}
