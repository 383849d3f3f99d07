//! Address spaces of processes: which file is mapped where, and at what bias.
//!
//! - [`CurrentProcess`]: the running program, through `dl_iterate_phdr` (the load bias
//!   is `dlpi_addr`; the main program's name is empty there: `/proc/self/exe`).
//! - [`ProcessMaps`]: any process, through `/proc/PID/maps` (the bias of a mapping comes
//!   from its file offset and the image's program headers).

use std::collections::HashMap;
use std::ffi::CStr;
use std::format;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use crate::{ElfImage, Error, ImageLoader, Mapping};

use super::{OpenOptions, open_as};

/// Opens images at most once per path (failures too).
#[derive(Default)]
struct ImageCache {
    opts: OpenOptions,
    images: Mutex<HashMap<PathBuf, Option<Arc<ElfImage>>>>,
}

impl ImageCache {
    fn get(&self, path: &Path) -> Option<Arc<ElfImage>> {
        self.get_as(path, path)
    }

    /// The image at `path`, named `name`.
    fn get_as(&self, path: &Path, name: &Path) -> Option<Arc<ElfImage>> {
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        images
            .entry(path.to_path_buf())
            .or_insert_with(|| open_as(path, &name.to_string_lossy(), &self.opts).ok())
            .clone()
    }
}

/// The running program's objects, found through `dl_iterate_phdr`.
#[derive(Default)]
pub struct CurrentProcess;

struct Found {
    name: PathBuf,
    bias: u64,
    range: Range<u64>,
}

impl CurrentProcess {
    fn find(pc: u64) -> Option<Found> {
        clew_unwinder::os::linux::find_loaded_object(|info| {
            let phdrs = clew_unwinder::os::linux::program_headers(info);
            let bias = info.dlpi_addr;
            let loads = phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD);
            let (lo, hi) = loads.fold((u64::MAX, 0), |(lo, hi), p| {
                (lo.min(p.p_vaddr), hi.max(p.p_vaddr + p.p_memsz))
            });
            let range = lo.wrapping_add(bias)..hi.wrapping_add(bias);
            if lo >= hi || !range.contains(&pc) {
                return None;
            }
            let name = if info.dlpi_name.is_null() {
                ""
            } else {
                // SAFETY: a NUL-terminated string owned by the loader.
                unsafe { CStr::from_ptr(info.dlpi_name) }
                    .to_str()
                    .unwrap_or("")
            };
            Some(Found {
                name: PathBuf::from(if name.is_empty() {
                    "/proc/self/exe"
                } else {
                    name
                }),
                bias,
                range,
            })
        })
    }
}

impl ImageLoader for CurrentProcess {
    fn load(&self, pc: u64) -> Option<Mapping> {
        static CACHE: std::sync::OnceLock<ImageCache> = std::sync::OnceLock::new();
        let found = Self::find(pc)?;
        let image = CACHE.get_or_init(ImageCache::default).get(&found.name)?;
        Some(Mapping {
            range: found.range,
            bias: found.bias,
            image,
        })
    }
}

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsEntry {
    pub range: Range<u64>,
    pub executable: bool,
    /// The file offset the mapping starts at.
    pub offset: u64,
    /// The mapped file (`None` for anonymous memory and pseudo-files like `[stack]`).
    pub path: Option<PathBuf>,
}

/// Parses `/proc/PID/maps`.
pub fn read_maps(pid: u32) -> Result<Vec<MapsEntry>, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/maps"));
    let text = std::fs::read_to_string(&path).map_err(|e| super::io_error(&path, e))?;
    Ok(text.lines().filter_map(parse_maps_line).collect())
}

fn parse_maps_line(line: &str) -> Option<MapsEntry> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().map(str::trim_start).unwrap_or("");
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    Some(MapsEntry {
        range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
        executable: perms.contains('x'),
        offset,
        path: path.starts_with('/').then(|| PathBuf::from(path)),
    })
}

/// Another process's objects, from its `/proc/PID/maps` (read once, at creation).
pub struct ProcessMaps {
    pid: u32,
    entries: Vec<MapsEntry>,
    images: ImageCache,
}

impl ProcessMaps {
    pub fn new(pid: u32) -> Result<Self, Error> {
        Ok(ProcessMaps {
            pid,
            entries: read_maps(pid)?,
            images: ImageCache::default(),
        })
    }

    pub fn entries(&self) -> &[MapsEntry] {
        &self.entries
    }

    fn image(&self, e: &MapsEntry) -> Option<Arc<ElfImage>> {
        let path = e.path.as_ref()?;
        // The process's view of the file (its mount namespace), then the host's.
        let via_root =
            PathBuf::from(format!("/proc/{}/root", self.pid)).join(path.strip_prefix("/").ok()?);
        self.images
            .get_as(&via_root, path)
            .or_else(|| self.images.get(path))
    }
}

impl ImageLoader for ProcessMaps {
    fn load(&self, pc: u64) -> Option<Mapping> {
        let e = self.entries.iter().find(|e| e.range.contains(&pc))?;
        let image = self.image(e)?;
        let vaddr = image.vaddr_of_offset(e.offset)?;
        Some(Mapping {
            range: e.range.clone(),
            bias: e.range.start.wrapping_sub(vaddr),
            image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let e = parse_maps_line(
            "7f1c2a000000-7f1c2a1b2000 r-xp 00028000 fd:00 1234   /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .unwrap();
        assert_eq!(e.range, 0x7f1c2a000000..0x7f1c2a1b2000);
        assert!(e.executable);
        assert_eq!(e.offset, 0x28000);
        assert_eq!(
            e.path.as_deref(),
            Some(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6"))
        );
        let anon = parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0      [stack]").unwrap();
        assert_eq!(anon.path, None);
    }
}
