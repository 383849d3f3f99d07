//! Software breakpoints: `int3` (0xCC) patched over the first byte of an instruction,
//! the original byte kept to restore it. Works in JIT code too: the [`Machine`] writes
//! into executable memory.

use alloc::collections::BTreeMap;

use crate::machine::{BadAddress, Machine};

/// The x86 breakpoint instruction.
pub const INT3: u8 = 0xcc;

/// The breakpoints gdb inserted, by address, with the bytes they replaced.
#[derive(Default)]
pub struct Breakpoints {
    inserted: BTreeMap<u64, u8>,
}

impl Breakpoints {
    /// Patches `int3` at `addr` (idempotent).
    pub fn insert(&mut self, m: &mut dyn Machine, addr: u64) -> Result<(), BadAddress> {
        if self.inserted.contains_key(&addr) {
            return Ok(());
        }
        let mut orig = [0u8];
        m.read_memory(addr, &mut orig)?;
        m.write_memory(addr, &[INT3])?;
        self.inserted.insert(addr, orig[0]);
        Ok(())
    }

    /// Restores the byte at `addr`; `false` when no breakpoint was there.
    pub fn remove(&mut self, m: &mut dyn Machine, addr: u64) -> Result<bool, BadAddress> {
        match self.inserted.get(&addr) {
            None => Ok(false),
            Some(&orig) => {
                m.write_memory(addr, &[orig])?;
                self.inserted.remove(&addr);
                Ok(true)
            }
        }
    }

    /// Whether gdb has a breakpoint at `addr`.
    pub fn contains(&self, addr: u64) -> bool {
        self.inserted.contains_key(&addr)
    }

    /// Restores every patched byte (gdb went away with breakpoints inserted).
    pub fn remove_all(&mut self, m: &mut dyn Machine) {
        for (&addr, &orig) in &self.inserted {
            let _ = m.write_memory(addr, &[orig]);
        }
        self.inserted.clear();
    }

    /// Replaces patched bytes in `buf` (read at `addr`) with the original ones, for
    /// readers other than gdb (which shadows breakpoints itself).
    pub fn unpatch(&self, addr: u64, buf: &mut [u8]) {
        let end = addr.saturating_add(buf.len() as u64);
        for (&a, &orig) in self.inserted.range(addr..end) {
            buf[(a - addr) as usize] = orig;
        }
    }
}
