//! Byte transports the stub talks over: a UART-like [`Uart`] (no_std) and, with `std`,
//! TCP and pty ([`crate::host::tcp`], [`crate::host::pty`]).
//!
//! gdbstub writes a response byte by byte; the bridge collects a whole packet and hands
//! it to [`Transport::write_all`] once (unbuffered writes cost a syscall per byte).

/// The peer is gone (socket closed, line dropped): the session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

/// A byte channel to one gdb at a time.
pub trait Transport {
    /// Waits for a gdb (TCP: accepts the next connection; a serial line: nothing to do).
    fn connect(&mut self) -> Result<(), Closed>;
    /// Ends the current connection (after a detach, or when the peer vanished).
    fn disconnect(&mut self) {}
    /// Waits (briefly) until the peer has read what was written: the last words
    /// before the target goes away (a pty discards unread input when it closes).
    fn drain(&mut self) {}
    /// Reads at least one byte into `buf` (blocking); `Err(Closed)` when the peer is gone.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Closed>;
    /// Writes all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Closed>;
    /// Reads what has already arrived, without waiting (`Ok(0)`: nothing). Lets the
    /// stub see gdb's `^C` while the target runs; transports that cannot return
    /// `Ok(0)` (no interrupts).
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        let _ = buf;
        Ok(0)
    }
}

/// A UART: blocking byte reads and writes.
pub trait Uart {
    /// The next received byte (blocking); `None` when the line is gone.
    fn read_byte(&mut self) -> Option<u8>;
    /// Sends one byte.
    fn write_byte(&mut self, byte: u8);
    /// Waits until sent bytes have left (optional).
    fn flush(&mut self) {}
}

/// A [`Transport`] over a [`Uart`]: one permanent line, no connection to accept.
pub struct SerialLine<U: Uart>(pub U);

impl<U: Uart> Transport for SerialLine<U> {
    fn connect(&mut self) -> Result<(), Closed> {
        Ok(())
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0.read_byte().ok_or(Closed)?;
        Ok(1)
    }
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        for &b in bytes {
            self.0.write_byte(b);
        }
        self.0.flush();
        Ok(())
    }
}
