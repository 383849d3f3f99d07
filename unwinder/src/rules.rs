//! Compiled unwind rules and the per-PC cache that keeps them.
//!
//! Evaluating CFI means running an FDE's instructions up to the PC. The result for the
//! common frame shapes fits a [`CompactRule`]: the CFA is a register plus an offset, and
//! the return address and the few callee-saved registers are stored at offsets from the
//! CFA. Those are cached per PC in a small set-associative [`UnwindCache`], so a repeated
//! stack costs one hash, one compare and the loads the rule names. Anything else (CFA or
//! register expressions, register-to-register rules, signal frames' rules) stays with the
//! full evaluation in [`crate::evaluate`] and is not cached.

use gimli::{CfaRule, RegisterRule, UnwindTableRow};

use crate::evaluate::FixedStorage;

/// How many saved registers a compact rule holds: x86_64 has six callee-saved ones.
pub const MAX_SAVED: usize = 6;

/// The rule of a frame whose CFI fits the common shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactRule {
    /// CFA = value of `cfa_reg` + `cfa_off`.
    pub cfa_reg: u16,
    pub cfa_off: i32,
    /// The return address is at CFA + `ra_off` (unless [`CompactRule::RA_UNDEFINED`]).
    pub ra_off: i16,
    pub flags: u8,
    pub n_saved: u8,
    /// `(register, offset from CFA)` for each saved register.
    pub saved: [(u16, i16); MAX_SAVED],
}

impl CompactRule {
    /// The frame is a signal trampoline (CIE augmentation `S`): its caller's PC is exact.
    pub const SIGNAL: u8 = 1;
    /// The return address is undefined: the outermost frame.
    pub const RA_UNDEFINED: u8 = 2;

    /// Compiles a row, or `None` when it needs the full evaluation.
    pub fn compile(
        row: &UnwindTableRow<usize, FixedStorage>,
        ra: u16,
        signal: bool,
    ) -> Option<Self> {
        let (cfa_reg, cfa_off) = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => {
                (register.0, i32::try_from(*offset).ok()?)
            }
            CfaRule::Expression(_) => return None,
        };
        let mut rule = CompactRule {
            cfa_reg,
            cfa_off,
            ra_off: 0,
            flags: if signal { Self::SIGNAL } else { 0 } | Self::RA_UNDEFINED,
            n_saved: 0,
            saved: [(0, 0); MAX_SAVED],
        };
        for (reg, r) in row.registers() {
            match (reg.0 == ra, r) {
                (true, RegisterRule::Offset(o)) => {
                    rule.ra_off = i16::try_from(*o).ok()?;
                    rule.flags &= !Self::RA_UNDEFINED;
                }
                (true, RegisterRule::Undefined) => {}
                (false, RegisterRule::Offset(o)) => {
                    let slot = rule.saved.get_mut(rule.n_saved as usize)?;
                    *slot = (reg.0, i16::try_from(*o).ok()?);
                    rule.n_saved += 1;
                }
                (false, RegisterRule::Undefined | RegisterRule::SameValue) => {}
                _ => return None,
            }
        }
        Some(rule)
    }

    /// The rule of a frame that keeps a frame pointer (used when no CFI covers a PC and
    /// the walk was asked to fall back to frame pointers).
    pub const fn frame_pointer<A: crate::arch::Arch>() -> Self {
        let mut saved = [(0, 0); MAX_SAVED];
        saved[0] = (A::FP, A::FP_SAVED_FP_OFFSET);
        CompactRule {
            cfa_reg: A::FP,
            cfa_off: A::FP_CFA_OFFSET,
            ra_off: A::FP_RA_OFFSET,
            flags: 0,
            n_saved: 1,
            saved,
        }
    }

    pub fn is_signal(&self) -> bool {
        self.flags & Self::SIGNAL != 0
    }
}

/// 128 sets of 4 ways: 512 rules. Four ways keep the PCs of one stack that hash to the
/// same set from evicting each other on every walk: with two, a 64-frame stack had a
/// set of three PCs in about one process out of two (which PCs collide depends on where
/// the loader put the code), and those frames were evaluated from their FDEs on every
/// walk; five of 65 PCs in one of 128 sets is rare (~2 % of such processes).
const SET_BITS: u32 = 7;
const SETS: usize = 1 << SET_BITS;
const WAYS: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    module: u64,
    rule: CompactRule,
}

/// A 4-way set-associative cache of compiled rules keyed by lookup PC, owned by whoever
/// walks (a thread, a panic handler's static, a host tool). It forgets everything when
/// the registry's generation moves, since a deregistered range may hold new code.
///
/// A set's four keys share half a cache line (`tags`), apart from the entries, so a
/// lookup compares them with one line read and then reads only the entry it hits.
pub struct UnwindCache {
    generation: u64,
    /// The lookup PCs of each set's entries, most recently inserted first (0: empty).
    tags: [[usize; WAYS]; SETS],
    entries: [[Entry; WAYS]; SETS],
    /// The rules the last walks used, by depth: `path[d]` is the lookup PC of the frame
    /// at depth `d` and its rule (0: none). A stack walked again (a backtrace taken
    /// from the same place, a throw along the same path) finds its rule here by
    /// comparing one PC, before it knows the PC's hash: the rule's address no longer
    /// waits for the previous frame's return address, so the CPU overlaps the frames.
    path: [PathEntry; PATH],
}

/// How many frames of a walk [`UnwindCache`] remembers by depth.
const PATH: usize = 128;

#[derive(Clone, Copy)]
struct PathEntry {
    pc: usize,
    rule: CompactRule,
}

impl Default for UnwindCache {
    fn default() -> Self {
        Self::new()
    }
}

impl UnwindCache {
    pub const fn new() -> Self {
        const EMPTY: Entry = Entry {
            module: 0,
            rule: CompactRule {
                cfa_reg: 0,
                cfa_off: 0,
                ra_off: 0,
                flags: 0,
                n_saved: 0,
                saved: [(0, 0); MAX_SAVED],
            },
        };
        const NO_PATH: PathEntry = PathEntry {
            pc: 0,
            rule: EMPTY.rule,
        };
        UnwindCache {
            generation: 0,
            tags: [[0; WAYS]; SETS],
            entries: [[EMPTY; WAYS]; SETS],
            path: [NO_PATH; PATH],
        }
    }

    #[inline]
    fn set(pc: usize) -> usize {
        (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - SET_BITS))
            & (SETS - 1)
    }

    /// Drops every entry when `generation` differs from the one the entries were made under.
    #[inline]
    pub fn validate(&mut self, generation: u64) {
        if self.generation != generation {
            self.tags = [[0; WAYS]; SETS];
            self.path.iter_mut().for_each(|p| p.pc = 0);
            self.generation = generation;
        }
    }

    /// The rule the frame at `depth` of an earlier walk had, when its lookup PC was `pc`.
    #[inline(always)]
    pub fn on_path(&self, depth: usize, pc: usize) -> Option<&CompactRule> {
        let p = self.path.get(depth)?;
        (p.pc == pc && pc != 0).then_some(&p.rule)
    }

    /// Remembers that the frame at `depth` has lookup PC `pc` and its rule is cached:
    /// the next walk through the same frame finds it with [`UnwindCache::on_path`].
    #[inline]
    pub fn remember_path(&mut self, depth: usize, pc: usize) {
        let rule = match self.get(pc) {
            Some((_, rule)) => *rule,
            None => return,
        };
        if let Some(p) = self.path.get_mut(depth) {
            *p = PathEntry { pc, rule };
        }
    }

    #[inline]
    pub fn get(&self, pc: usize) -> Option<(u64, &CompactRule)> {
        if pc == 0 {
            return None;
        }
        let set = Self::set(pc);
        let way = self.tags[set].iter().position(|&t| t == pc)?;
        let e = &self.entries[set][way];
        Some((e.module, &e.rule))
    }

    /// Inserts into the set's first way, moving the others down (the oldest leaves): the
    /// most recently inserted rules stay.
    #[inline]
    pub fn insert(&mut self, pc: usize, module: u64, rule: CompactRule) {
        let set = Self::set(pc);
        let (tags, entries) = (&mut self.tags[set], &mut self.entries[set]);
        // Where `pc` already is, else the last way: everything before it moves down one.
        let at = tags.iter().position(|&t| t == pc).unwrap_or(WAYS - 1);
        tags.copy_within(0..at, 1);
        entries.copy_within(0..at, 1);
        tags[0] = pc;
        entries[0] = Entry { module, rule };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(off: i32) -> CompactRule {
        CompactRule {
            cfa_reg: 7,
            cfa_off: off,
            ra_off: -8,
            flags: 0,
            n_saved: 0,
            saved: [(0, 0); MAX_SAVED],
        }
    }

    /// PCs of one set: the four most recently inserted stay, re-inserting one keeps the
    /// others, a new generation forgets them all.
    #[test]
    fn four_ways_keep_the_newest() {
        let mut c = UnwindCache::new();
        let set = UnwindCache::set(0x1000);
        let pcs: alloc::vec::Vec<usize> = (0x1000..)
            .filter(|&pc| UnwindCache::set(pc) == set)
            .take(6)
            .collect();
        for (i, &pc) in pcs[..4].iter().enumerate() {
            c.insert(pc, i as u64, rule(i as i32));
        }
        for (i, &pc) in pcs[..4].iter().enumerate() {
            assert_eq!(
                c.get(pc).map(|(m, r)| (m, r.cfa_off)),
                Some((i as u64, i as i32))
            );
        }
        c.insert(pcs[1], 9, rule(9));
        c.insert(pcs[4], 4, rule(4));
        assert!(c.get(pcs[0]).is_none(), "the oldest left");
        assert_eq!(c.get(pcs[1]).map(|(m, _)| m), Some(9));
        for &pc in &pcs[2..5] {
            assert!(c.get(pc).is_some());
        }
        assert!(c.get(pcs[5]).is_none());
        assert!(c.get(0).is_none());
        c.remember_path(3, pcs[2]);
        c.remember_path(4, 0x7777);
        assert_eq!(c.on_path(3, pcs[2]).map(|r| r.cfa_off), Some(2));
        assert!(c.on_path(3, pcs[3]).is_none(), "another PC at that depth");
        assert!(c.on_path(4, 0x7777).is_none(), "not cached: not remembered");
        assert!(c.on_path(PATH, pcs[2]).is_none());
        c.validate(1);
        assert!(pcs.iter().all(|&pc| c.get(pc).is_none()));
        assert!(c.on_path(3, pcs[2]).is_none());
    }
}
