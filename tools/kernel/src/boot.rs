//! What the boot loader (QEMU's PVH loader) hands over: `struct hvm_start_info` (Xen's
//! `arch-x86/hvm/start_info.h`), its command line and memory map.

use core::ops::Range;

const MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// The parts of the boot information the kernel uses.
#[derive(Debug)]
pub struct BootInfo {
    /// The command line (QEMU's `-append`).
    pub cmdline: &'static str,
    /// The RAM region holding the kernel (from the memory map).
    pub ram: Range<usize>,
}

impl BootInfo {
    /// Reads the start info at physical address `at` (identity-mapped).
    ///
    /// # Safety
    /// `at` must be what the PVH loader passed in ebx.
    pub unsafe fn read(at: usize) -> Result<BootInfo, &'static str> {
        // SAFETY: the loader's structure, identity-mapped.
        let si = unsafe { &*(at as *const StartInfo) };
        if si.magic != MAGIC {
            return Err("bad hvm_start_info magic: not booted through PVH");
        }
        let cmdline = match si.cmdline_paddr {
            0 => "",
            // SAFETY: a NUL-terminated string from the loader.
            p => unsafe { core::ffi::CStr::from_ptr(p as *const core::ffi::c_char) }
                .to_str()
                .map_err(|_| "command line is not UTF-8")?,
        };
        let kernel = crate::image::kernel_range();
        let mut ram = None;
        if si.version >= 1 && si.memmap_paddr != 0 {
            for i in 0..si.memmap_entries as usize {
                // SAFETY: `memmap_entries` entries from the loader.
                let e = unsafe { &*((si.memmap_paddr as usize + i * 24) as *const MemmapEntry) };
                let r = e.addr as usize..(e.addr + e.size) as usize;
                if e.kind == E820_RAM && r.start <= kernel.start && kernel.end <= r.end {
                    ram = Some(r);
                }
            }
        }
        Ok(BootInfo {
            cmdline,
            ram: ram.ok_or("no RAM region around the kernel in the memory map")?,
        })
    }

    /// The value of a `key=VALUE` command-line argument.
    pub fn arg(&self, key: &str) -> Option<&'static str> {
        self.cmdline
            .split_ascii_whitespace()
            .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
    }

    /// The `ADDR,LEN` range of a `key=ADDR,LEN` command-line argument (hex or decimal).
    pub fn range_arg(&self, key: &str) -> Option<Range<usize>> {
        let value = self.arg(key)?;
        let (addr, len) = value.split_once(',')?;
        let (addr, len) = (number(addr)?, number(len)?);
        Some(addr..addr.checked_add(len)?)
    }
}

fn number(s: &str) -> Option<usize> {
    match s.strip_prefix("0x") {
        Some(hex) => usize::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
