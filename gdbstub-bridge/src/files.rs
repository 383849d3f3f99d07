//! The files gdb may open over host I/O (`vFile:open/pread/fstat/close`): the
//! libraries of the list (JIT images, native files) and the exec file. Anything else is `ENOENT` (gdb probes
//! for separate debug files and build-id links; those must fail quietly).

use alloc::vec::Vec;

/// An open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenFile {
    /// The library at this index of the current list.
    Library(usize),
    /// The exec file.
    Exec,
}

/// Open files by descriptor (gdb closes them; a new session starts empty).
#[derive(Default)]
pub struct FileTable {
    open: Vec<Option<OpenFile>>,
}

/// Descriptors a session may hold at once (gdb keeps a handful).
pub const MAX_OPEN: usize = 64;

impl FileTable {
    /// A descriptor for `f`; `None` when [`MAX_OPEN`] are open.
    pub fn open(&mut self, f: OpenFile) -> Option<u32> {
        if let Some(i) = self.open.iter().position(Option::is_none) {
            self.open[i] = Some(f);
            return Some(i as u32);
        }
        if self.open.len() >= MAX_OPEN {
            return None;
        }
        self.open.push(Some(f));
        Some(self.open.len() as u32 - 1)
    }

    pub fn get(&self, fd: u32) -> Option<OpenFile> {
        self.open.get(fd as usize).copied().flatten()
    }

    /// Closes `fd`; `false` when it was not open.
    pub fn close(&mut self, fd: u32) -> bool {
        match self.open.get_mut(fd as usize) {
            Some(slot @ Some(_)) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }
}
