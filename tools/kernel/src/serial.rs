//! COM1 (the 16550 UART at I/O port 0x3F8): the kernel's console. Writes take no lock
//! and keep no state, so the panic path may print at any time.

use core::fmt;

const COM1: u16 = 0x3F8;

/// # Safety
/// Port I/O on the UART's ports only.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller names a UART port; `out` has no memory effects.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// COM1 at 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init() {
    init_port(COM1);
}

/// Initializes the 16550 UART at I/O base `port` (COM1 0x3F8, COM2 0x2F8).
pub fn init_port(port: u16) {
    // SAFETY: the standard 16550 initialization sequence on the UART's ports.
    unsafe {
        outb(port + 1, 0x00);
        outb(port + 3, 0x80);
        outb(port, 0x01);
        outb(port + 1, 0x00);
        outb(port + 3, 0x03);
        outb(port + 2, 0xC7);
        outb(port + 4, 0x03);
    }
}

/// Writes one byte to the UART at `port`, waiting for room.
pub fn put_to(port: u16, byte: u8) {
    // SAFETY: polling the line status register, then writing the data register. Without
    // a UART there, the status reads 0xFF ("ready") and the write goes nowhere.
    unsafe {
        while inb(port + 5) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        outb(port, byte);
    }
}

/// Reads one byte from the UART at `port`, waiting for it (polling).
pub fn read_from(port: u16) -> u8 {
    // SAFETY: polling the line status register's data-ready bit, then reading the data
    // register.
    unsafe {
        while inb(port + 5) & 0x01 == 0 {
            core::hint::spin_loop();
        }
        inb(port)
    }
}

fn put(byte: u8) {
    put_to(COM1, byte);
}

/// Writes bytes as they are to the UART at `port` (the post-mortem dump's frames).
pub fn write_bytes_to(port: u16, bytes: &[u8]) {
    bytes.iter().for_each(|&b| put_to(port, b));
}

/// The console as a `fmt::Write`: `\n` becomes `\r\n`.
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Serial, format_args!($($arg)*));
    }};
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        $crate::print!($($arg)*);
        $crate::print!("\n");
    }};
}
