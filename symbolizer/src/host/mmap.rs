//! A read-only file mapping as [`ImageBytes`], which releases pages it was told are
//! consumed once enough accumulated (they are clean: the page cache has them).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Mmap, UncheckedAdvice};

use crate::{Error, ImageBytes};

/// A mapped file.
pub struct MappedFile {
    map: Mmap,
    release_after: Option<usize>,
    consumed: AtomicUsize,
}

impl MappedFile {
    /// Maps `path` read-only; `release_after`: see
    /// [`super::OpenOptions::release_pages_after`].
    pub fn open(path: &Path, release_after: Option<usize>) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| super::io_error(path, e))?;
        // SAFETY: the mapping is read-only; as with every reader of mapped files, the
        // file must not be truncated or modified while it is mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| super::io_error(path, e))?;
        Ok(MappedFile {
            map,
            release_after,
            consumed: AtomicUsize::new(0),
        })
    }
}

impl ImageBytes for MappedFile {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn consumed(&self, len: usize) {
        let Some(limit) = self.release_after else {
            return;
        };
        let total = self.consumed.fetch_add(len, Ordering::Relaxed) + len;
        if total < limit {
            return;
        }
        self.consumed.store(0, Ordering::Relaxed);
        // SAFETY: a shared read-only file mapping that is never written: dropping its
        // pages loses nothing, and later reads fault them back in from the file.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, 0, self.map.len())
        };
    }
}
