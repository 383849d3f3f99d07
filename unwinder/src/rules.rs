//! Compiled unwind rules and the per-PC cache that keeps them.
//!
//! Evaluating CFI means running an FDE's instructions up to the PC. The result for the
//! common frame shapes fits a [`CompactRule`]: the CFA is a register plus an offset, and
//! the return address and the few callee-saved registers are stored at offsets from the
//! CFA. Those are cached per PC in a small direct-mapped [`UnwindCache`], so a repeated
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

/// 256 sets of 2 ways: 512 rules. Two ways keep the few PCs of one stack that hash to
/// the same set from evicting each other on every walk.
const SET_BITS: u32 = 8;
const SETS: usize = 1 << SET_BITS;
const WAYS: usize = 2;

#[derive(Clone, Copy)]
struct Entry {
    /// The lookup PC (0: empty).
    pc: usize,
    module: u64,
    rule: CompactRule,
}

/// A 2-way set-associative cache of compiled rules keyed by lookup PC, owned by whoever
/// walks (a thread, a panic handler's static, a host tool). It forgets everything when
/// the registry's generation moves, since a deregistered range may hold new code.
pub struct UnwindCache {
    generation: u64,
    sets: [[Entry; WAYS]; SETS],
}

impl Default for UnwindCache {
    fn default() -> Self {
        Self::new()
    }
}

impl UnwindCache {
    pub const fn new() -> Self {
        const EMPTY: Entry = Entry {
            pc: 0,
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
        UnwindCache {
            generation: 0,
            sets: [[EMPTY; WAYS]; SETS],
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
            self.sets.iter_mut().flatten().for_each(|e| e.pc = 0);
            self.generation = generation;
        }
    }

    #[inline]
    pub fn get(&self, pc: usize) -> Option<(u64, &CompactRule)> {
        let set = &self.sets[Self::set(pc)];
        let e = set.iter().find(|e| e.pc == pc && pc != 0)?;
        Some((e.module, &e.rule))
    }

    /// Inserts into the set's first way, moving its entry to the second (the older one
    /// leaves): the most recently inserted rules stay.
    #[inline]
    pub fn insert(&mut self, pc: usize, module: u64, rule: CompactRule) {
        let set = &mut self.sets[Self::set(pc)];
        if set[0].pc != pc {
            set[1] = set[0];
        }
        set[0] = Entry { pc, module, rule };
    }
}
