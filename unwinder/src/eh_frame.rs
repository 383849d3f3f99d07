//! `.eh_frame` sections: measuring a zero-terminated section, and building the
//! pre-decoded, sorted FDE index a module keeps for lookups.
//!
//! The index is built once, at registration; a lookup is then a binary search over
//! fixed-size [`FdeEntry`] records with no pointer decoding per probe. CIEs are parsed
//! once too and kept beside the index, so evaluating an FDE never re-parses its CIE.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::Range;

use gimli::{BaseAddresses, CieOrFde, CommonInformationEntry, EhFrame, UnwindSection};

use crate::Error;

/// The reader every parsed section uses: a borrowed slice of native-endian bytes.
///
/// The `'static` lifetime is a promise made by whoever registered the bytes (see
/// [`crate::Registry::register`]): they stay valid until the module is deregistered and
/// reclaimed.
pub type Reader = gimli::EndianSlice<'static, gimli::NativeEndian>;

/// A parsed Common Information Entry.
pub type Cie = CommonInformationEntry<Reader>;
/// A parsed Frame Description Entry.
pub type Fde = gimli::FrameDescriptionEntry<Reader>;

/// One FDE of the index: the function's range relative to the module's text start, and
/// where the FDE starts in `.eh_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdeEntry {
    /// `pc_begin - text.start`.
    pub start: u32,
    /// The length of the range the FDE covers, in bytes.
    pub len: u32,
    /// The FDE's offset in the `.eh_frame` section.
    pub offset: u32,
}

/// The sorted FDE index and CIE cache of one `.eh_frame` section.
///
/// `repr(C)`, with what a lookup of a small index reads first: a module keeps the index
/// right after its text bounds, so that a lookup in a module of at most [`SMALL_FDES`]
/// FDEs (a function registered alone through `__register_frame`, say) reads one cache
/// line of the module and nothing else.
#[derive(Debug)]
#[repr(C)]
pub struct EhFrameIndex {
    fdes: Box<[FdeEntry]>,
    /// A copy of `fdes` when there are at most [`SMALL_FDES`] of them (zeroed slots past
    /// the end): searched instead of `fdes`, which would be another cache miss.
    small: [FdeEntry; SMALL_FDES],
    /// For a large index: `pages[p]` is how many FDEs start at or before text offset
    /// `p << page_shift`, so a lookup binary-searches only the FDEs of one page (a dozen
    /// probes fewer in a big executable). Empty for small indices.
    pages: Box<[u32]>,
    page_shift: u32,
    cies: Vec<(u32, Cie)>,
}

/// Indices with at most this many FDEs are searched without a page table.
const MIN_PAGED_FDES: usize = 64;

/// Indices with at most this many FDEs keep them inline too (see [`EhFrameIndex`]).
pub const SMALL_FDES: usize = 2;

const NO_FDE: FdeEntry = FdeEntry {
    start: 0,
    len: 0,
    offset: 0,
};

/// How many bytes at the front of an [`EhFrameIndex`] a lookup in a small index reads.
pub(crate) const HOT_INDEX_BYTES: usize =
    core::mem::offset_of!(EhFrameIndex, small) + core::mem::size_of::<[FdeEntry; SMALL_FDES]>();

fn small_copy(fdes: &[FdeEntry]) -> [FdeEntry; SMALL_FDES] {
    let mut small = [NO_FDE; SMALL_FDES];
    if fdes.len() <= SMALL_FDES {
        small[..fdes.len()].copy_from_slice(fdes);
    }
    small
}

/// Walks the length fields of a zero-terminated `.eh_frame` section starting at `start`
/// and returns its length in bytes, including the 4-byte zero terminator.
///
/// This is what libgcc's `__register_frame(begin)` has to work with: a pointer to the
/// section start and nothing else. `limit`, when given, bounds the walk (the section never
/// extends past it); without one, the walk trusts the length fields.
///
/// # Safety
/// `start` must point to readable memory holding CIE/FDE records up to and including the
/// zero terminator (or up to `limit` bytes).
pub unsafe fn zero_terminated_len(start: *const u8, limit: Option<usize>) -> Result<usize, Error> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut off = 0usize;
    loop {
        if limit - off < 4 {
            return Err(Error::BadEhFrame(gimli::Error::UnexpectedEof(
                gimli::ReaderOffsetId(off as u64),
            )));
        }
        // SAFETY: the caller promises the records up to the terminator are readable,
        // and `off + 4 <= limit`.
        let len = unsafe { start.add(off).cast::<u32>().read_unaligned() };
        if len == 0 {
            return Ok(off + 4);
        }
        let record = if len == 0xffff_ffff {
            if limit - off < 12 {
                return Err(Error::BadEhFrame(gimli::Error::UnexpectedEof(
                    gimli::ReaderOffsetId(off as u64),
                )));
            }
            // SAFETY: as above, `off + 12 <= limit`.
            let len64 = unsafe { start.add(off + 4).cast::<u64>().read_unaligned() };
            usize::try_from(len64)
                .ok()
                .and_then(|l| l.checked_add(12))
                .ok_or(Error::BadEhFrame(gimli::Error::UnexpectedEof(
                    gimli::ReaderOffsetId(off as u64),
                )))?
        } else {
            len as usize + 4
        };
        off = off
            .checked_add(record)
            .filter(|&o| o <= limit)
            .ok_or(Error::BadEhFrame(gimli::Error::UnexpectedEof(
                gimli::ReaderOffsetId(off as u64),
            )))?;
    }
}

impl EhFrameIndex {
    /// Parses every CIE and FDE of `section` and builds the sorted index.
    ///
    /// `bases` must hold the section's runtime address (`set_eh_frame`) so that
    /// pc-relative pointers decode to runtime addresses. When `text` is given, every FDE
    /// must lie inside it; otherwise the text bounds are derived from the FDEs and
    /// returned (libgcc's `__register_frame` semantics). Zero-length FDEs are skipped.
    pub fn build(
        section: &EhFrame<Reader>,
        bases: &BaseAddresses,
        text: Option<Range<u64>>,
    ) -> Result<(Self, Range<u64>), Error> {
        let mut cies: Vec<(u32, Cie)> = Vec::new();
        let mut raw: Vec<(u64, u64, u32)> = Vec::new();
        let mut entries = section.entries(bases);
        while let Some(entry) = entries.next()? {
            match entry {
                CieOrFde::Cie(cie) => {
                    let off = u32::try_from(cie.offset()).map_err(|_| Error::TooLarge)?;
                    cies.push((off, cie));
                }
                CieOrFde::Fde(partial) => {
                    let fde = partial.parse(|_, _, off| find_cie(&cies, off.0))?;
                    let (begin, len) = (fde.initial_address(), fde.len());
                    if len == 0 {
                        continue;
                    }
                    let end = begin.checked_add(len).ok_or(Error::FdeOutsideText {
                        pc_begin: begin,
                        pc_end: u64::MAX,
                    })?;
                    let off = u32::try_from(fde.offset()).map_err(|_| Error::TooLarge)?;
                    raw.push((begin, end, off));
                }
            }
        }
        let bounds = match text {
            Some(t) => {
                if let Some(&(b, e, _)) = raw.iter().find(|&&(b, e, _)| b < t.start || e > t.end) {
                    return Err(Error::FdeOutsideText {
                        pc_begin: b,
                        pc_end: e,
                    });
                }
                t
            }
            None => {
                let lo = raw.iter().map(|r| r.0).min().unwrap_or(0);
                let hi = raw.iter().map(|r| r.1).max().unwrap_or(0);
                lo..hi
            }
        };
        if bounds.end - bounds.start > u64::from(u32::MAX) {
            return Err(Error::TooLarge);
        }
        raw.sort_unstable_by_key(|r| r.0);
        let fdes: Vec<FdeEntry> = raw
            .into_iter()
            .map(|(b, e, offset)| FdeEntry {
                start: (b - bounds.start) as u32,
                len: (e - b) as u32,
                offset,
            })
            .collect();
        let (pages, page_shift) = page_table(&fdes, bounds.end - bounds.start);
        Ok((
            EhFrameIndex {
                small: small_copy(&fdes),
                fdes: fdes.into_boxed_slice(),
                pages: pages.into_boxed_slice(),
                page_shift,
                cies,
            },
            bounds,
        ))
    }

    /// The FDE whose range holds `text_offset` (a PC minus the module's text start).
    #[inline]
    pub fn find(&self, text_offset: u32) -> Option<&FdeEntry> {
        let n = self.fdes.len();
        if n <= SMALL_FDES {
            let small = &self.small[..n];
            let i = small.partition_point(|e| e.start <= text_offset);
            return entry_before(small, i, text_offset);
        }
        let i = match self.pages.len() {
            0 => self.fdes.partition_point(|e| e.start <= text_offset),
            n => {
                // Every FDE before `lo` starts at or before this page, every one from
                // `hi` on after it.
                let p = (text_offset >> self.page_shift) as usize;
                let lo = self.pages[p.min(n - 1)] as usize;
                let hi = self
                    .pages
                    .get(p + 1)
                    .map_or(self.fdes.len(), |&h| h as usize);
                lo + self.fdes[lo..hi].partition_point(|e| e.start <= text_offset)
            }
        };
        entry_before(&self.fdes, i, text_offset)
    }

    /// All FDEs, sorted by start.
    pub fn fdes(&self) -> &[FdeEntry] {
        &self.fdes
    }

    /// The cached CIE at `offset`.
    pub fn cie(&self, offset: usize) -> gimli::Result<Cie> {
        find_cie(&self.cies, offset)
    }
}

/// The entry before position `i` of `fdes` when it covers `text_offset`.
#[inline]
fn entry_before(fdes: &[FdeEntry], i: usize, text_offset: u32) -> Option<&FdeEntry> {
    let e = fdes.get(i.checked_sub(1)?)?;
    (text_offset - e.start < e.len).then_some(e)
}

/// The page table of a sorted index over `text_len` bytes: pages sized so that there
/// are about as many pages as FDEs (at most one `u32` per FDE).
fn page_table(fdes: &[FdeEntry], text_len: u64) -> (Vec<u32>, u32) {
    if fdes.len() <= MIN_PAGED_FDES {
        return (Vec::new(), 0);
    }
    let per_fde = (text_len / fdes.len() as u64).max(1);
    let shift = (u64::BITS - (per_fde - 1).leading_zeros()).max(4);
    let n_pages = (text_len >> shift) as usize + 1;
    let mut pages = Vec::with_capacity(n_pages);
    let mut i = 0;
    for p in 0..n_pages {
        let page_start = (p as u64) << shift;
        while i < fdes.len() && u64::from(fdes[i].start) <= page_start {
            i += 1;
        }
        pages.push(i as u32);
    }
    (pages, shift)
}

fn find_cie(cies: &[(u32, Cie)], offset: usize) -> gimli::Result<Cie> {
    let i = cies.partition_point(|c| (c.0 as usize) < offset);
    match cies.get(i) {
        Some((o, cie)) if *o as usize == offset => Ok(cie.clone()),
        _ => Err(gimli::Error::NotCiePointer(offset as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paged lookup finds what a linear scan finds, for every offset.
    #[test]
    fn paged_find_matches_linear_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |m: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(m)) as u32
        };
        for n in [1usize, 2, 3, 10, 64, 65, 100, 1000] {
            let mut fdes = Vec::new();
            let mut at = next(64);
            for _ in 0..n {
                let len = 1 + next(200);
                fdes.push(FdeEntry {
                    start: at,
                    len,
                    offset: at,
                });
                // Gaps, adjacent and overlapping FDEs.
                at = (at + len + next(300)).saturating_sub(next(4) * (len / 2));
            }
            fdes.sort_unstable_by_key(|e| e.start);
            let text_len = u64::from(fdes.iter().map(|e| e.start + e.len).max().unwrap());
            let (pages, page_shift) = page_table(&fdes, text_len);
            assert_eq!(pages.is_empty(), n <= MIN_PAGED_FDES);
            let index = EhFrameIndex {
                small: small_copy(&fdes),
                fdes: fdes.clone().into_boxed_slice(),
                pages: pages.into_boxed_slice(),
                page_shift,
                cies: Vec::new(),
            };
            for off in 0..text_len as u32 + 600 {
                let i = fdes.partition_point(|e| e.start <= off);
                let want = i
                    .checked_sub(1)
                    .map(|i| &fdes[i])
                    .filter(|e| off - e.start < e.len);
                assert_eq!(index.find(off), want, "n = {n}, offset {off}");
            }
        }
    }
}
