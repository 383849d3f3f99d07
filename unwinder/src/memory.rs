//! How the unwinder reads stack memory.
//!
//! The same unwinder walks the live stack, a stack snapshot held on the host (a dump),
//! or a remote target's memory (the gdb bridge): each is a [`Memory`]. A read of a bad
//! address is an [`Error::BadAddress`], never a fault, for every implementation except
//! the explicitly unchecked live one.

use core::ops::Range;

use crate::Error;

/// Word-sized reads of the memory a stack walk needs.
pub trait Memory {
    /// Reads the 8-byte little-endian word at `addr`.
    fn read_u64(&self, addr: u64) -> Result<u64, Error>;

    /// Reads `size` (1, 2, 4 or 8) bytes at `addr`, zero-extended (DWARF `deref_size`).
    fn read_sized(&self, addr: u64, size: u8) -> Result<u64, Error> {
        let v = self.read_u64(addr)?;
        Ok(match size {
            1 => v & 0xff,
            2 => v & 0xffff,
            4 => v & 0xffff_ffff,
            _ => v,
        })
    }
}

/// The memory of the running program.
///
/// With bounds, only reads inside them are performed (the thread's stack, a signal
/// stack); anything else is an error. Without bounds ([`LiveMemory::unchecked`]) every
/// read is performed: the fast path for stacks known to be sane.
#[derive(Clone, Copy, Debug)]
pub struct LiveMemory<'a> {
    bounds: Option<&'a [Range<u64>]>,
}

impl<'a> LiveMemory<'a> {
    /// Reads only inside `bounds`.
    pub fn with_bounds(bounds: &'a [Range<u64>]) -> Self {
        LiveMemory {
            bounds: Some(bounds),
        }
    }

    /// Reads anywhere.
    ///
    /// # Safety
    /// Every address the CFI of the walked frames computes must be readable: the stack
    /// must not be corrupt.
    pub unsafe fn unchecked() -> Self {
        LiveMemory { bounds: None }
    }
}

impl LiveMemory<'_> {
    /// Checks that `len` bytes at `addr` lie inside the bounds, if any.
    #[inline]
    fn check(&self, addr: u64, len: u64) -> Result<(), Error> {
        if let Some(bounds) = self.bounds {
            let end = addr.checked_add(len).ok_or(Error::BadAddress { addr })?;
            if !bounds.iter().any(|r| r.start <= addr && end <= r.end) {
                return Err(Error::BadAddress { addr });
            }
        }
        Ok(())
    }
}

impl Memory for LiveMemory<'_> {
    #[inline]
    fn read_u64(&self, addr: u64) -> Result<u64, Error> {
        self.check(addr, 8)?;
        // SAFETY: either inside the bounds the caller declared readable, or the caller of
        // `unchecked` promised the stack is sane.
        Ok(unsafe { (addr as usize as *const u64).read_unaligned() })
    }

    /// Reads only the `size` bytes asked for: the last bytes of a bounded range (or of a
    /// mapping) can be read.
    #[inline]
    fn read_sized(&self, addr: u64, size: u8) -> Result<u64, Error> {
        if !matches!(size, 1 | 2 | 4) {
            return self.read_u64(addr);
        }
        self.check(addr, u64::from(size))?;
        let p = addr as usize;
        // SAFETY: as for `read_u64`, for the `size` bytes checked.
        Ok(unsafe {
            match size {
                1 => u64::from((p as *const u8).read()),
                2 => u64::from((p as *const u16).read_unaligned()),
                _ => u64::from((p as *const u32).read_unaligned()),
            }
        })
    }
}

/// A copy of some memory taken elsewhere: a dumped stack, a test's synthetic stack.
#[derive(Clone, Copy, Debug)]
pub struct SliceMemory<'a> {
    /// The address the first byte had where the copy was taken.
    pub base: u64,
    pub bytes: &'a [u8],
}

impl Memory for SliceMemory<'_> {
    #[inline]
    fn read_u64(&self, addr: u64) -> Result<u64, Error> {
        let off = addr
            .checked_sub(self.base)
            .ok_or(Error::BadAddress { addr })?;
        let off = usize::try_from(off).map_err(|_| Error::BadAddress { addr })?;
        let word = self
            .bytes
            .get(off..off.checked_add(8).ok_or(Error::BadAddress { addr })?)
            .ok_or(Error::BadAddress { addr })?;
        Ok(u64::from_le_bytes(word.try_into().expect("8 bytes")))
    }

    /// Reads only the `size` bytes asked for: the last bytes of the snapshot can be read.
    #[inline]
    fn read_sized(&self, addr: u64, size: u8) -> Result<u64, Error> {
        if !matches!(size, 1 | 2 | 4) {
            return self.read_u64(addr);
        }
        let bad = Error::BadAddress { addr };
        let off = usize::try_from(addr.checked_sub(self.base).ok_or(bad)?).map_err(|_| bad)?;
        let bytes = self
            .bytes
            .get(off..off.checked_add(usize::from(size)).ok_or(bad)?)
            .ok_or(bad)?;
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    }
}
