//! DWARF lookups on gimli, built for lazy parsing, a memory budget and sharing
//! between threads.
//!
//! Nothing is parsed before the first lookup. Then: the unit index (unit headers and
//! `.debug_aranges`, [`units`]); per unit, on first use, its abbreviations and root DIE,
//! its functions ([`functions`]: one pass over its DIEs) and its line table's sequences
//! ([`lines`]); per function, its inlined calls; per line sequence, its rows. Each
//! piece sits behind a `spin::Once`, so concurrent lookups share it (the type is
//! `Sync`), and each unit's parsed state is charged to the [`crate::cache::Budget`]:
//! past the budget, the least recently used units are dropped and parsed again when
//! needed.
//!
//! Frames follow llvm-symbolizer's rules: the innermost DIE of llvm's address map
//! ([`interval`]), the line table row for the innermost frame, `DW_AT_call_*` of each
//! inlined call for its caller, names by [`names`].

mod functions;
mod interval;
mod lines;
mod names;
mod program;
mod ranges;
mod units;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gimli::UnitOffset;

use crate::cache::Shared;
use crate::{Error, Frame, Language, Name};
use functions::{Functions, Inlined};
use lines::{Lines, Row};
use units::UnitIndex;

/// The reader every parsed structure uses: slices of the image's bytes.
pub(crate) type R = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// One unit's parsed state. Dropped on eviction (in-flight users keep it alive).
pub(crate) struct UnitState {
    /// The unit, without its line program (moved into `lines` when that is parsed).
    pub unit: gimli::Unit<R>,
    pub lang: Language,
    program: spin::Mutex<Option<gimli::IncompleteLineProgram<R>>>,
    lines: spin::Once<Result<Option<Lines>, Error>>,
    functions: spin::Once<Result<Functions, Error>>,
    /// Heap bytes charged to the budget for this unit.
    size: AtomicUsize,
    evicted: AtomicBool,
}

/// The DWARF of one image.
pub(crate) struct DwarfInfo {
    pub dwarf: gimli::Dwarf<R>,
    index: spin::Once<Result<UnitIndex, Error>>,
    /// The image's code ranges (executable segments), to drop tombstone ranges.
    code: Vec<(u64, u64)>,
    shared: Arc<Shared>,
    evicting: spin::Mutex<()>,
}

impl DwarfInfo {
    pub fn new(dwarf: gimli::Dwarf<R>, code: Vec<(u64, u64)>, shared: Arc<Shared>) -> Self {
        DwarfInfo {
            dwarf,
            index: spin::Once::new(),
            code,
            shared,
            evicting: spin::Mutex::new(()),
        }
    }

    fn index(&self) -> Result<&UnitIndex, Error> {
        self.index
            .call_once(|| {
                let index = UnitIndex::build(&self.dwarf, &self.code)?;
                self.shared.budget.add(index.heap_size());
                Ok(index)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The parsed state of unit `slot`, parsing it if needed.
    fn unit_state(&self, index: &UnitIndex, slot: usize) -> Result<Arc<UnitState>, Error> {
        let s = &index.slots[slot];
        s.touch(self.shared.budget.now());
        if let Some(st) = s.state.lock().as_ref() {
            return Ok(st.clone());
        }
        let mut unit = self.dwarf.unit(s.header)?;
        let lang = unit_language(&self.dwarf, &unit);
        let program = unit.line_program.take();
        let st = Arc::new(UnitState {
            unit,
            lang,
            program: spin::Mutex::new(program),
            lines: spin::Once::new(),
            functions: spin::Once::new(),
            size: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
        });
        {
            let mut g = s.state.lock();
            if let Some(existing) = g.as_ref() {
                return Ok(existing.clone());
            }
            *g = Some(st.clone());
        }
        // Abbreviations, root attributes, the line program header: a rough constant.
        let abbrevs = 4096;
        self.charge(index, &st, abbrevs);
        Ok(st)
    }

    fn functions<'a>(&self, index: &UnitIndex, st: &'a UnitState) -> Result<&'a Functions, Error> {
        let mut added = 0;
        let f = st.functions.call_once(|| {
            let f = Functions::parse(gimli::UnitRef::new(&self.dwarf, &st.unit))?;
            added = f.heap_size();
            Ok(f)
        });
        if added > 0 {
            self.shared.consumed(st.unit.header.length_including_self());
            self.charge(index, st, added);
        }
        f.as_ref().map_err(Clone::clone)
    }

    fn lines<'a>(&self, index: &UnitIndex, st: &'a UnitState) -> Result<Option<&'a Lines>, Error> {
        let mut added = 0;
        let l = st.lines.call_once(|| {
            let Some(program) = st.program.lock().take() else {
                return Ok(None);
            };
            let l = Lines::parse(program, st.unit.comp_dir)?;
            self.shared.consumed(l.program_len());
            added = l.base_size();
            Ok(Some(l))
        });
        if added > 0 {
            self.charge(index, st, added);
        }
        l.as_ref().map(Option::as_ref).map_err(Clone::clone)
    }

    fn inlined<'a>(
        &self,
        index: &UnitIndex,
        st: &UnitState,
        f: &'a functions::Function,
    ) -> Result<&'a Inlined, Error> {
        let mut added = 0;
        let inl = f.inlined.call_once(|| {
            let i = Inlined::parse(gimli::UnitRef::new(&self.dwarf, &st.unit), f.offset)?;
            added = i.heap_size() + 32;
            Ok(i)
        });
        if added > 0 {
            self.charge(index, st, added);
        }
        inl.as_ref().map_err(Clone::clone)
    }

    /// The name of a function or inlined call, through the name cache.
    fn name(
        &self,
        st: &Arc<UnitState>,
        offset: UnitOffset<usize>,
        slot: &spin::Once<Option<Name>>,
    ) -> Option<Name> {
        slot.call_once(|| {
            let raw = self.die_name(st, offset).ok().flatten()?;
            Some(self.shared.name(raw.bytes.slice(), raw.lang))
        })
        .clone()
    }

    /// Charges `bytes` of parsed state to `st`'s unit, evicting units past the budget.
    fn charge(&self, index: &UnitIndex, st: &UnitState, bytes: usize) {
        if st.evicted.load(Ordering::Relaxed) {
            return;
        }
        st.size.fetch_add(bytes, Ordering::Relaxed);
        if self.shared.budget.add(bytes) {
            self.evict(index);
        }
    }

    /// Drops the least recently used units until the budget has room again.
    fn evict(&self, index: &UnitIndex) {
        let Some(_g) = self.evicting.try_lock() else {
            return;
        };
        let mut loaded: Vec<(u32, usize)> = index
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state.lock().is_some())
            .map(|(i, s)| (s.last_used.load(Ordering::Relaxed), i))
            .collect();
        loaded.sort_unstable();
        let target = self.shared.budget.limit() / 4 * 3;
        for (_, i) in loaded {
            if self.shared.budget.used() <= target {
                break;
            }
            let Some(st) = index.slots[i].state.lock().take() else {
                continue;
            };
            st.evicted.store(true, Ordering::Relaxed);
            self.shared.budget.sub(st.size.swap(0, Ordering::Relaxed));
        }
    }

    /// The frames of `addr` (an address in the image's own address space), innermost
    /// first. Empty when no unit describes the address.
    pub fn frames(&self, addr: u64) -> Result<Vec<Frame>, Error> {
        self.shared.budget.tick();
        let index = self.index()?;
        let Some(slot) = index.find(addr) else {
            return Ok(Vec::new());
        };
        let st = self.unit_state(index, slot)?;
        let unit = gimli::UnitRef::new(&self.dwarf, &st.unit);
        let lines = self.lines(index, &st)?;
        let row = match lines {
            Some(l) => {
                let (row, added) = l.find(addr)?;
                if added > 0 {
                    self.charge(index, &st, added);
                }
                row
            }
            None => None,
        };
        let mut frames = Vec::new();
        let mut loc = Location::from_row(self, index, &st, unit, lines, row);
        let functions = self.functions(index, &st)?;
        let Some(function) = functions.find(addr) else {
            if row.is_some() {
                frames.push(loc.frame(None, false));
            }
            return Ok(frames);
        };
        let inlined = self.inlined(index, &st, function)?;
        for i in inlined.chain(addr) {
            let call = &inlined.calls[i as usize];
            let name = self.name(&st, call.offset, &call.name);
            frames.push(loc.frame(name, true));
            loc = Location::from_call(self, index, &st, unit, lines, call);
        }
        let name = self.name(&st, function.offset, &function.name);
        frames.push(loc.frame(name, false));
        Ok(frames)
    }
}

/// A frame's source location before it becomes a [`Frame`].
struct Location {
    file: Option<Arc<str>>,
    line: u32,
    column: u32,
    discriminator: u32,
}

impl Location {
    fn from_row(
        d: &DwarfInfo,
        index: &UnitIndex,
        st: &UnitState,
        unit: gimli::UnitRef<'_, R>,
        lines: Option<&Lines>,
        row: Option<Row>,
    ) -> Self {
        let Some(row) = row else {
            return Location::unknown();
        };
        Location {
            file: file(d, index, st, unit, lines, Some(row.file)),
            line: row.line,
            column: row.column,
            discriminator: row.discriminator,
        }
    }

    fn from_call(
        d: &DwarfInfo,
        index: &UnitIndex,
        st: &UnitState,
        unit: gimli::UnitRef<'_, R>,
        lines: Option<&Lines>,
        call: &functions::InlinedCall,
    ) -> Self {
        Location {
            file: file(d, index, st, unit, lines, call.call_file),
            line: call.call_line,
            column: call.call_column,
            discriminator: call.call_discriminator,
        }
    }

    fn unknown() -> Self {
        Location {
            file: None,
            line: 0,
            column: 0,
            discriminator: 0,
        }
    }

    fn frame(&self, function: Option<Name>, inlined: bool) -> Frame {
        let nz = |v: u32| (v != 0).then_some(v);
        Frame {
            function,
            file: self.file.clone(),
            line: nz(self.line),
            column: if self.line != 0 {
                nz(self.column)
            } else {
                None
            },
            discriminator: nz(self.discriminator),
            inlined,
            source_offset: None,
        }
    }
}

fn file(
    d: &DwarfInfo,
    index: &UnitIndex,
    st: &UnitState,
    unit: gimli::UnitRef<'_, R>,
    lines: Option<&Lines>,
    file: Option<u64>,
) -> Option<Arc<str>> {
    let (path, added) = lines?.file(unit, file?);
    if added > 0 {
        d.charge(index, st, added);
    }
    path
}

/// `DW_AT_language` of the unit's root DIE.
fn unit_language(dwarf: &gimli::Dwarf<R>, unit: &gimli::Unit<R>) -> Language {
    let unit = gimli::UnitRef::new(dwarf, unit);
    let Ok(mut entries) = unit.entries_raw(None) else {
        return Language::Unknown;
    };
    let Ok(Some(abbrev)) = entries.read_abbreviation() else {
        return Language::Unknown;
    };
    for spec in abbrev.attributes() {
        let Ok(attr) = entries.read_attribute(*spec) else {
            break;
        };
        if let (gimli::DW_AT_language, gimli::AttributeValue::Language(l)) =
            (attr.name(), attr.value())
        {
            return Language::from_dwarf(l);
        }
    }
    Language::Unknown
}
