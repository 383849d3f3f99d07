//! The host layer (`std`): images from files, separate debug files, address spaces of
//! processes, parallel batches.
//!
//! - [`open`] / [`open_with`]: map an ELF file and find its separate debug file
//!   ([`debuginfo`]: build-id under `/usr/lib/debug/.build-id/`, `.gnu_debuglink` next to
//!   the file, in `.debug/`, under `/usr/lib/debug/`); compressed debug sections are
//!   decompressed when loaded.
//! - [`CurrentProcess`]: the running program's objects (`dl_iterate_phdr`), the
//!   [`crate::global`] symbolizer's loader.
//! - [`ProcessMaps`]: another process's objects from `/proc/PID/maps`.
//! - [`parallel`]: a batch split over threads sharing one `Sync` image or symbolizer.

pub mod debuginfo;
mod maps;
mod mmap;
pub mod parallel;

use std::boxed::Box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::vec::Vec;
use std::{format, vec};

pub use maps::{CurrentProcess, MapsEntry, ProcessMaps, read_maps};
pub use mmap::MappedFile;

use crate::{ElfImage, Error, ImageBytes, Options, Symbolizer};

/// How [`open_with`] loads an image.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub image: Options,
    /// Look for a separate debug file when the image has no DWARF.
    pub separate_debug: bool,
    /// Roots of separate debug files (`/usr/lib/debug`).
    pub debug_dirs: Vec<PathBuf>,
    /// Drop mapped pages from the resident set after this many bytes of DWARF were
    /// read (see [`ImageBytes::consumed`]); `None`: never.
    pub release_pages_after: Option<usize>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            image: Options::default(),
            separate_debug: true,
            debug_dirs: vec![PathBuf::from("/usr/lib/debug")],
            release_pages_after: Some(8 << 20),
        }
    }
}

/// A symbolizer for the running process: JIT code from the global registry, native
/// code from its loaded objects (found on first use). [`crate::global`] is one.
pub fn current_process() -> Symbolizer {
    let s = Symbolizer::new();
    s.set_loader(Box::new(CurrentProcess));
    s
}

/// Maps the ELF file at `path` (and its separate debug file, if any) with the default
/// options.
pub fn open(path: impl AsRef<Path>) -> Result<Arc<ElfImage>, Error> {
    open_with(path, &OpenOptions::default())
}

/// Maps the ELF file at `path` (and its separate debug file, if any).
pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Arc<ElfImage>, Error> {
    let path = path.as_ref();
    open_as(path, &path.to_string_lossy(), opts)
}

/// Like [`open_with`], naming the image `name`.
pub fn open_as(path: &Path, name: &str, opts: &OpenOptions) -> Result<Arc<ElfImage>, Error> {
    let file = MappedFile::open(path, opts.release_pages_after)?;
    let debug: Option<Arc<dyn ImageBytes>> = if opts.separate_debug {
        debuginfo::find_for(path, file.bytes(), &opts.debug_dirs)
            .and_then(|p| MappedFile::open(&p, opts.release_pages_after).ok())
            .map(|f| Arc::new(f) as Arc<dyn ImageBytes>)
    } else {
        None
    };
    Ok(Arc::new(ElfImage::new(
        name,
        Arc::new(file),
        debug,
        opts.image,
    )?))
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}
