//! Finding an image's separate debug file, as gdb and binutils do: by build-id
//! (`DIR/.build-id/ab/cdef….debug`), then by `.gnu_debuglink` (next to the image, in
//! its `.debug/` directory, under `DIR/` + the image's directory), checked by build-id
//! when both files have one, else by the link's CRC-32.

use std::path::{Path, PathBuf};
use std::string::String;
use std::{format, vec};

use object::Object;

/// The separate debug file of the image at `path` (whose bytes are `bytes`), if it
/// needs one (no `.debug_info`) and one is found.
pub fn find_for(path: &Path, bytes: &[u8], debug_dirs: &[PathBuf]) -> Option<PathBuf> {
    let file = object::File::parse(bytes).ok()?;
    if file.section_by_name(".debug_info").is_some() {
        return None;
    }
    let build_id = file.build_id().ok().flatten();
    if let Some(id) = build_id
        && let Some(p) = by_build_id(id, debug_dirs)
    {
        return Some(p);
    }
    let (name, crc) = file.gnu_debuglink().ok().flatten()?;
    let name = Path::new(std::str::from_utf8(name).ok()?);
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut candidates = vec![dir.join(name), dir.join(".debug").join(name)];
    for d in debug_dirs {
        candidates.push(d.join(dir.strip_prefix("/").unwrap_or(&dir)).join(name));
    }
    candidates
        .into_iter()
        .find(|c| c.as_path() != path && matches(c, build_id, crc))
}

/// `DIR/.build-id/ab/cdef….debug` for each debug directory.
pub fn by_build_id(id: &[u8], debug_dirs: &[PathBuf]) -> Option<PathBuf> {
    let (first, rest) = id.split_first()?;
    let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
    debug_dirs
        .iter()
        .map(|d| {
            d.join(".build-id")
                .join(format!("{first:02x}"))
                .join(format!("{hex}.debug"))
        })
        .find(|p| p.is_file())
}

/// Whether `candidate` is the debug file: same build-id when both have one, else the
/// debuglink CRC-32 of its contents.
fn matches(candidate: &Path, build_id: Option<&[u8]>, crc: u32) -> bool {
    let Ok(data) = std::fs::read(candidate) else {
        return false;
    };
    if let (Some(id), Ok(file)) = (build_id, object::File::parse(&*data))
        && let Ok(Some(other)) = file.build_id()
    {
        return id == other;
    }
    crc32fast::hash(&data) == crc
}
