//! Leaving QEMU through `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: writing `v` to
//! port 0xf4 ends QEMU with status `(v << 1) | 1`. A triple fault under `-no-reboot`
//! ends it with 0, so success must be a status of its own: 33 (`v = 0x10`), and failure
//! 3 (`v = 1`).

const PORT: u16 = 0xf4;

/// QEMU's exit status after [`success`].
pub const SUCCESS_STATUS: i32 = 33;
/// QEMU's exit status after [`failure`].
pub const FAILURE_STATUS: i32 = 3;

fn exit(value: u32) -> ! {
    // SAFETY: the debug-exit device's port; QEMU stops here.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") PORT, in("eax") value, options(nomem, nostack));
    }
    // Without the device (a real machine, or QEMU without it): stop here.
    loop {
        // SAFETY: interrupts are off; `hlt` just parks the CPU.
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
    }
}

pub fn success() -> ! {
    crate::gdb::exiting(0);
    exit(0x10)
}

pub fn failure() -> ! {
    crate::gdb::exiting(1);
    exit(0x01)
}

/// Fails without telling gdb (from inside the stub).
pub fn failure_now() -> ! {
    exit(0x01)
}
