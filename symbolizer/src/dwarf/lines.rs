//! A unit's line table, parsed lazily: one pass over the line program finds its
//! sequences (contiguous runs of code: a function, usually) without keeping rows; the
//! rows of a sequence are materialized the first time an address falls in it. File
//! paths are rendered on first use, with llvm's rules (DWARF 4 and 5 directory indexes,
//! the compilation directory for relative paths).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::R;
use super::program::{Program, SeqBounds};
use crate::Error;

/// One row of the line table: the location of the code from `addr` to the next row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row {
    pub addr: u64,
    pub file: u64,
    /// 0 when the code has no source line (compiler-generated).
    pub line: u32,
    pub column: u32,
    pub discriminator: u32,
}

struct Sequence {
    seq: SeqBounds,
    rows: spin::Once<Result<Box<[Row]>, Error>>,
}

/// A unit's line program, its sequences and its rendered file names.
pub(crate) struct Lines {
    /// The header (file tables) as gimli parsed it.
    header: gimli::LineProgramHeader<R>,
    program: Program,
    /// Sorted by end address (llvm's order: the first sequence ending after an address
    /// is the one searched).
    sequences: Box<[Sequence]>,
    files: Box<[spin::Once<Option<Arc<str>>>]>,
    comp_dir: Option<R>,
}

impl Lines {
    /// Finds the sequences of a unit's line program.
    pub fn parse(
        program: gimli::IncompleteLineProgram<R>,
        comp_dir: Option<R>,
    ) -> Result<Self, Error> {
        let header = program.header().clone();
        let program = Program::new(&header);
        let mut sequences: Vec<Sequence> = program
            .sequences()?
            .into_iter()
            .map(|seq| Sequence {
                seq,
                rows: spin::Once::new(),
            })
            .collect();
        sequences.sort_by_key(|s| s.seq.end);
        let files = header.file_names().len() + 1;
        Ok(Lines {
            sequences: sequences.into_boxed_slice(),
            files: (0..files).map(|_| spin::Once::new()).collect(),
            comp_dir,
            header,
            program,
        })
    }

    /// The length of the line program's opcodes.
    pub fn program_len(&self) -> usize {
        self.program.len()
    }

    /// Approximate heap bytes held before any rows are materialized.
    pub fn base_size(&self) -> usize {
        let header = &self.header;
        self.sequences.len() * core::mem::size_of::<Sequence>()
            + self.files.len()
                * (core::mem::size_of::<spin::Once<Option<Arc<str>>>>()
                    + core::mem::size_of::<gimli::FileEntry<R>>())
            + core::mem::size_of_val(header.include_directories())
            + core::mem::size_of::<gimli::LineProgramHeader<R>>()
    }

    /// The row covering `addr`, and the heap bytes newly spent on materialized rows.
    pub fn find(&self, addr: u64) -> Result<(Option<Row>, usize), Error> {
        let i = self.sequences.partition_point(|s| s.seq.end <= addr);
        let Some(s) = self.sequences.get(i) else {
            return Ok((None, 0));
        };
        if addr < s.seq.start {
            return Ok((None, 0));
        }
        let mut added = 0;
        let rows = s.rows.call_once(|| {
            let rows = self.materialize(&s.seq)?;
            added = rows.len() * core::mem::size_of::<Row>();
            Ok(rows)
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => return Err(e.clone()),
        };
        // The last row at or before `addr` (the last of equal addresses, as llvm).
        let j = rows.partition_point(|r| r.addr <= addr);
        Ok((j.checked_sub(1).map(|j| rows[j]), added))
    }

    fn materialize(&self, seq: &SeqBounds) -> Result<Box<[Row]>, Error> {
        Ok(self.program.rows(seq.offset)?.into_boxed_slice())
    }

    /// The path of file `index` (a row's file, or a `DW_AT_call_file`), rendered once.
    /// The second value is the heap bytes newly spent.
    pub fn file(&self, unit: gimli::UnitRef<'_, R>, index: u64) -> (Option<Arc<str>>, usize) {
        let Some(slot) = self.files.get(index as usize) else {
            return (self.render(unit, index).map(Arc::from), 0);
        };
        let mut added = 0;
        let path = slot.call_once(|| {
            let p: Option<Arc<str>> = self.render(unit, index).map(Arc::from);
            added = p.as_ref().map_or(0, |p| p.len() + 16);
            p
        });
        (path.clone(), added)
    }

    /// llvm's `Prologue::getFileNameByIndex` with `AbsoluteFilePath`.
    fn render(&self, unit: gimli::UnitRef<'_, R>, index: u64) -> Option<String> {
        let header = &self.header;
        let entry = header.file(index)?;
        let name = attr_str(unit, entry.path_name())?;
        if is_absolute(&name) {
            return Some(name);
        }
        let dirs = header.include_directories();
        let dir_index = entry.directory_index() as usize;
        let version = header.version();
        let dir = if version >= 5 {
            dirs.get(dir_index)
        } else {
            dir_index.checked_sub(1).and_then(|i| dirs.get(i))
        };
        let dir = dir.and_then(|d| attr_str(unit, *d)).unwrap_or_default();
        let mut path = String::new();
        if (version < 5 || dir_index != 0)
            && !is_absolute(&dir)
            && let Some(comp_dir) = self.comp_dir
        {
            append(&mut path, &comp_dir.to_string_lossy());
        }
        append(&mut path, &dir);
        append(&mut path, &name);
        Some(path)
    }
}

fn attr_str(unit: gimli::UnitRef<'_, R>, value: gimli::AttributeValue<R>) -> Option<String> {
    let s = unit.attr_string(value).ok()?;
    Some(s.to_string_lossy().into_owned())
}

fn is_absolute(p: &str) -> bool {
    p.starts_with('/')
        || p.starts_with('\\')
        || p.get(1..3).is_some_and(|s| s == ":\\" || s == ":/")
}

/// `llvm::sys::path::append` (POSIX style): one separator between components, empty
/// components skipped.
fn append(path: &mut String, component: &str) {
    if component.is_empty() {
        return;
    }
    if path.ends_with('/') {
        path.push_str(component.trim_start_matches('/'));
    } else {
        if !path.is_empty() && !component.starts_with('/') {
            path.push('/');
        }
        path.push_str(component);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_path_append() {
        let mut p = String::new();
        append(&mut p, "/build");
        append(&mut p, "src");
        append(&mut p, "main.rs");
        assert_eq!(p, "/build/src/main.rs");
        let mut p = String::from("/a/");
        append(&mut p, "/b");
        assert_eq!(p, "/a/b");
        let mut p = String::from("/a");
        append(&mut p, "");
        append(&mut p, "c.h");
        assert_eq!(p, "/a/c.h");
    }
}
