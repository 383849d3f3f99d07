//! One ELF image and its symbolization: DWARF (lazily loaded, from the image or from a
//! separate debug file), the symbol table as fallback and for the outermost name.
//!
//! Addresses are the image's own virtual addresses (what `addr2line -e FILE` takes);
//! [`crate::Symbolizer`] maps runtime addresses to them.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use object::{Object, ObjectSection, ObjectSegment};

use crate::cache::{Budget, DEFAULT_BUDGET, NameCache, Shared};
use crate::dwarf::{DwarfInfo, R};
use crate::image::{Backing, ImageBytes, Static};
use crate::symtab::{self, Sym, SymbolTable};
use crate::{Error, Frame, Language, ModuleInfo, ModuleKind, Symbolized};

/// How an image symbolizes.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Heap bytes the image's parsed state may hold before units are evicted.
    pub budget: usize,
    /// Name the outermost frame from the symbol table when a symbol covers the address
    /// (llvm-symbolizer's and addr2line's rule; DWARF names it otherwise).
    pub symtab_names: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            budget: DEFAULT_BUDGET,
            symtab_names: true,
        }
    }
}

/// A loadable segment: where file bytes land in the image's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
}

type File = object::File<'static, Static>;

/// An ELF image ready to symbolize. `Sync`: share one between threads.
pub struct ElfImage {
    name: Arc<str>,
    options: Options,
    segments: Vec<Segment>,
    build_id: Option<Static>,
    debuglink: Option<(Static, u32)>,
    /// Parsed on the first lookup that needs it.
    dwarf: spin::Once<Result<Option<DwarfInfo>, Error>>,
    /// The symbol table, and whether it was read from the debug file.
    symtab: spin::Once<(SymbolTable, bool)>,
    /// Whether a lookup already scanned the symbol table without building it.
    scanned: AtomicBool,
    file: File,
    debug_file: Option<File>,
    /// Last: everything above borrows from the bytes it keeps alive.
    shared: Arc<Shared>,
}

impl ElfImage {
    /// An image in memory that lives forever (a kernel's loaded image).
    pub fn from_static(name: &str, bytes: &'static [u8]) -> Result<Self, Error> {
        Self::new(name, Arc::new(bytes), None, Options::default())
    }

    /// An image from shared bytes, with an optional separate debug file (the target of
    /// its `.gnu_debuglink` or build-id) that supplies the DWARF and, when the image has
    /// none, the symbols.
    pub fn new(
        name: &str,
        image: Arc<dyn ImageBytes>,
        debug: Option<Arc<dyn ImageBytes>>,
        options: Options,
    ) -> Result<Self, Error> {
        let mut backing = Backing::default();
        let bytes = backing.add(image);
        let file = File::parse(bytes)?;
        let debug_file = match debug {
            Some(d) => Some(File::parse(backing.add(d))?),
            None => None,
        };
        let segments = file
            .segments()
            .filter_map(|s| {
                let (offset, filesz) = s.file_range();
                let executable = match s.flags() {
                    object::SegmentFlags::Elf { p_flags } => p_flags & object::elf::PF_X != 0,
                    _ => true,
                };
                Some(Segment {
                    vaddr: s.address(),
                    memsz: s.size(),
                    offset,
                    filesz,
                    executable,
                })
                .filter(|s| s.memsz > 0)
            })
            .collect();
        let build_id = file.build_id().ok().flatten();
        let debuglink = file.gnu_debuglink().ok().flatten();
        Ok(ElfImage {
            name: name.into(),
            options,
            segments,
            build_id,
            debuglink,
            dwarf: spin::Once::new(),
            symtab: spin::Once::new(),
            scanned: AtomicBool::new(false),
            file,
            debug_file,
            shared: Arc::new(Shared {
                budget: Budget::new(options.budget),
                names: NameCache::new(),
                backing,
            }),
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The GNU build-id note.
    pub fn build_id(&self) -> Option<&[u8]> {
        self.build_id
    }

    /// The `.gnu_debuglink` file name and CRC.
    pub fn debuglink(&self) -> Option<(&[u8], u32)> {
        self.debuglink
    }

    /// The loadable segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The virtual address file offset `offset` is loaded at.
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| offset >= s.offset && offset - s.offset < s.filesz.max(1))
            .map(|s| s.vaddr + (offset - s.offset))
    }

    /// Whether the image (or its debug file) has DWARF line or function information.
    pub fn has_dwarf(&self) -> bool {
        self.dwarf_file().section_by_name(".debug_info").is_some()
    }

    /// Whether the image (or its debug file) has a symbol table.
    pub fn has_symbols(&self) -> bool {
        !self.symtab().is_empty()
    }

    /// Sets the memory budget of the parsed state.
    pub fn set_budget(&self, bytes: usize) {
        self.shared.budget.set_limit(bytes);
    }

    /// Heap bytes the parsed state holds (approximately).
    pub fn memory_used(&self) -> usize {
        self.shared.budget.used()
    }

    /// The frames of `addr` (a virtual address of this image), innermost first: from
    /// DWARF, with the outermost function named by the symbol table when
    /// [`Options::symtab_names`]; from the symbol table alone when there is no DWARF for
    /// the address. `Ok(empty)` when nothing describes the address.
    pub fn symbolize(&self, addr: u64) -> Result<Vec<Frame>, Error> {
        self.lookup(addr).map(|(frames, _)| frames)
    }

    /// Like [`ElfImage::symbolize`], as a [`Symbolized`] naming this image, with the
    /// enclosing symbol's start.
    pub fn symbolize_full(&self, addr: u64) -> Result<Symbolized, Error> {
        let (frames, symbol_start) = self.lookup(addr)?;
        Ok(Symbolized {
            address: addr,
            module: Some(ModuleInfo {
                name: self.name.clone(),
                kind: ModuleKind::Elf,
                relative: addr,
            }),
            frames,
            symbol_start,
        })
    }

    /// The frames of `addr` and the start of the symbol covering it.
    pub(crate) fn lookup(&self, addr: u64) -> Result<(Vec<Frame>, Option<u64>), Error> {
        let dwarf = match self.dwarf() {
            Ok(Some(d)) => d.frames(addr),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        let named = matches!(&dwarf, Ok(f) if f.last().is_some_and(|f| f.function.is_some()));
        let sym = if self.options.symtab_names || !named {
            self.find_symbol(addr)
        } else {
            None
        };
        let mut frames = match (dwarf, &sym) {
            (Ok(f), _) => f,
            // Malformed DWARF: the symbol table still names the function.
            (Err(_), Some(_)) => Vec::new(),
            (Err(e), None) => return Err(e),
        };
        let Some((sym, file, dynamic)) = sym else {
            return Ok((frames, None));
        };
        let Some(raw) = symtab::name(file, dynamic, &sym) else {
            return Ok((frames, Some(sym.addr)));
        };
        let name = self.shared.name(raw.as_bytes(), Language::Unknown);
        if frames.is_empty() {
            frames.push(Frame::default());
        }
        let outer = frames.last_mut().expect("a frame");
        outer.function = Some(name);
        if outer.file.is_none()
            && let Some(f) = symtab::file_name(file, dynamic, &sym)
        {
            outer.file = Some(f.into());
        }
        Ok((frames, Some(sym.addr)))
    }

    /// The symbol covering `addr`, the file whose table holds it, and whether that
    /// table is `.dynsym`. The first lookup scans the table once instead of sorting it
    /// (a one-address run stays cheap); later ones build the sorted table.
    fn find_symbol(&self, addr: u64) -> Option<(Sym, &File, bool)> {
        if self.symtab.get().is_none() && !self.scanned.swap(true, Ordering::Relaxed) {
            let files = core::iter::once(&self.file).chain(self.debug_file.as_ref());
            for file in files {
                if let Some((found, dynamic)) = SymbolTable::scan(file, addr) {
                    return found.map(|s| (s, file, dynamic));
                }
            }
            return None;
        }
        let (table, file) = self.symtab_and_file();
        table.lookup(addr).map(|s| (*s, file, table.is_dynamic()))
    }

    fn dwarf_file(&self) -> &File {
        match &self.debug_file {
            Some(d) if d.section_by_name(".debug_info").is_some() => d,
            _ => &self.file,
        }
    }

    fn dwarf(&self) -> Result<Option<&DwarfInfo>, Error> {
        self.dwarf
            .call_once(|| {
                let code = self
                    .segments
                    .iter()
                    .filter(|s| s.executable)
                    .map(|s| (s.vaddr, s.vaddr + s.memsz))
                    .collect();
                load_dwarf(self.dwarf_file(), code, &self.shared)
            })
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }

    fn symtab(&self) -> &SymbolTable {
        self.symtab_and_file().0
    }

    /// The symbol table and the file it was read from.
    fn symtab_and_file(&self) -> (&SymbolTable, &File) {
        let (table, from_debug) = self.symtab.call_once(|| {
            let mut t = SymbolTable::build(&self.file);
            let mut from_debug = false;
            if t.is_empty()
                && let Some(d) = &self.debug_file
            {
                t = SymbolTable::build(d);
                from_debug = true;
            }
            self.shared.budget.add(t.heap_size());
            (t, from_debug)
        });
        let file = match (&self.debug_file, from_debug) {
            (Some(d), true) => d,
            _ => &self.file,
        };
        (table, file)
    }
}

impl core::fmt::Debug for ElfImage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ElfImage")
            .field("name", &self.name)
            .field("segments", &self.segments.len())
            .field("separate_debug_file", &self.debug_file.is_some())
            .finish()
    }
}

/// Loads the DWARF sections of `file` (decompressing compressed ones with `std`).
fn load_dwarf(
    file: &File,
    code: Vec<(u64, u64)>,
    shared: &Arc<Shared>,
) -> Result<Option<DwarfInfo>, Error> {
    if file.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let dwarf = gimli::Dwarf::load(|id: gimli::SectionId| -> Result<R, Error> {
        let data = match file.section_by_name(id.name()) {
            Some(s) => section_data(&s, id.name(), &shared.backing)?,
            None => &[],
        };
        Ok(gimli::EndianSlice::new(data, endian))
    })?;
    Ok(Some(DwarfInfo::new(dwarf, code, shared.clone())))
}

fn section_data(
    section: &object::Section<'static, '_, Static>,
    name: &'static str,
    backing: &Backing,
) -> Result<Static, Error> {
    let c = section.compressed_data()?;
    if c.format == object::CompressionFormat::None {
        return Ok(c.data);
    }
    #[cfg(feature = "std")]
    {
        let _ = name;
        let data = c.decompress()?;
        Ok(backing.own(data.into_owned().into_boxed_slice()))
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = backing;
        Err(Error::CompressedSection(name))
    }
}
