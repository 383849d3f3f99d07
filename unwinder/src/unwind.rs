//! The stack walk: from a register context to the caller's, frame after frame.
//!
//! For each frame the walk looks up the unwind rule of its PC (the [`UnwindCache`]
//! first, then the registry's FDE index, then a [`ModuleProvider`], then optionally the
//! frame-pointer convention), applies it to get the caller's registers, and checks that
//! the CFA moved up the stack. A caller frame's PC is a return address, so the rule is
//! looked up at `pc - 1`; after a signal frame (CIE augmentation `S`) or for a context
//! captured at a fault, the PC is exact and used as is.

use core::marker::PhantomData;
use core::ops::ControlFlow;

use gimli::{BaseAddresses, EhFrame, UnwindSection};

use crate::Error;
use crate::arch::{Arch, Native, Registers};
use crate::eh_frame::{Fde, Reader};
use crate::evaluate::{self, UnwindContext};
use crate::memory::Memory;
use crate::provider::ModuleProvider;
use crate::registry::{Guard, ModuleKind, Registry};
use crate::rules::{CompactRule, UnwindCache};

/// The default bound on a walk's depth.
pub const DEFAULT_MAX_DEPTH: usize = 4096;

/// One frame of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's PC: the return address for caller frames, the exact PC for the
    /// first frame of a fault context and for frames interrupted by a signal.
    pub pc: u64,
    /// The stack pointer in this frame.
    pub sp: u64,
    /// The frame's CFA, when unwind information covered its PC.
    pub cfa: Option<u64>,
    /// The registered module holding the PC (`None` for provider or frame-pointer frames).
    pub module: Option<crate::ModuleId>,
    pub kind: FrameKind,
    /// Whether `pc` is exact (else it is a return address, and `pc - 1` is in the call).
    pub exact_pc: bool,
}

impl Frame {
    /// The address to symbolize: inside the call instruction for return addresses.
    pub fn lookup_pc(&self) -> u64 {
        if self.exact_pc {
            self.pc
        } else {
            self.pc.saturating_sub(1)
        }
    }
}

/// What kind of code a frame runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A registered module of this kind.
    Module(ModuleKind),
    /// Found through the [`ModuleProvider`].
    Provided,
    /// No CFI: unwound through the frame pointer.
    FramePointer,
    /// No unwind information at all: the last frame of the walk.
    Unknown,
}

/// A configured walker. Cheap to make; the state of a walk lives in [`FrameIter`].
pub struct Unwinder<'r, A: Arch = Native> {
    registry: &'r Registry,
    provider: Option<&'r dyn ModuleProvider>,
    max_depth: usize,
    frame_pointer_fallback: bool,
    _arch: PhantomData<A>,
}

impl<'r, A: Arch> Unwinder<'r, A> {
    pub fn new(registry: &'r Registry) -> Self {
        Unwinder {
            registry,
            provider: None,
            max_depth: DEFAULT_MAX_DEPTH,
            frame_pointer_fallback: false,
            _arch: PhantomData,
        }
    }

    /// Asks `provider` for PCs the registry does not know.
    pub fn with_provider(mut self, provider: &'r dyn ModuleProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Bounds the number of frames a walk yields.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Unwinds frames without CFI through the frame pointer (code built with frame
    /// pointers but without unwind tables, such as a precompiled `libcore`).
    pub fn with_frame_pointer_fallback(mut self, on: bool) -> Self {
        self.frame_pointer_fallback = on;
        self
    }

    /// The FDE covering `pc` (the registry first, then the provider), with what a
    /// personality needs from it; `mem` reads indirect personality pointers.
    pub fn fde_info<M: Memory>(&self, pc: usize, mem: &M) -> Option<FdeInfo> {
        let guard = self.registry.pin();
        if let Some((module, entry)) = guard.find_fde(pc) {
            let fde = module.parse_fde(entry).ok()?;
            let at = module.eh_frame().as_ptr() as u64 + u64::from(entry.offset);
            return Some(fde_info(&fde, at, mem));
        }
        let m = self.provider?.find_module(pc)?;
        let (_, _, fde) = provided_fde(&m, pc as u64)?;
        Some(fde_info(
            &fde,
            m.eh_frame.as_ptr() as u64 + fde.offset() as u64,
            mem,
        ))
    }

    /// Walks from `regs`. `exact_pc` says whether `regs`' PC is exact (a fault or
    /// interrupt context) or a return address (a context captured by a call).
    pub fn frames<'a, M: Memory>(
        &'a self,
        regs: A::Regs,
        exact_pc: bool,
        mem: &'a M,
        cache: Option<&'a mut UnwindCache>,
    ) -> FrameIter<'a, A, M> {
        let mut cache = cache;
        if let Some(c) = cache.as_deref_mut() {
            c.validate(self.registry.generation());
        }
        FrameIter {
            unwinder: self,
            guard: None,
            regs,
            mem,
            cache,
            exact_pc,
            depth: 0,
            last_cfa: None,
            state: State::Walking,
            fde_info: None,
        }
    }

    /// Collects the PCs of the walk from `regs` into `buf` without allocating; returns
    /// how many were written. Stops at the end of the stack, when `buf` is full, or at
    /// an error (the PCs before it are kept).
    pub fn trace_into<M: Memory>(
        &self,
        regs: A::Regs,
        exact_pc: bool,
        mem: &M,
        cache: Option<&mut UnwindCache>,
        buf: &mut [usize],
    ) -> usize {
        self.frames(regs, exact_pc, mem, cache).collect_pcs(buf)
    }
}

enum State {
    Walking,
    Failed(Error),
    Done,
}

/// An iterator over the frames of one walk. Holds the registry pinned from the first
/// frame that looks a module up until it is dropped.
pub struct FrameIter<'a, A: Arch, M: Memory> {
    unwinder: &'a Unwinder<'a, A>,
    /// Pinned at the first frame that needs the registry: a walk whose rules all come
    /// from the cache reads nothing the registry frees, and skips the pin's two locked
    /// instructions.
    guard: Option<Guard<'a>>,
    regs: A::Regs,
    mem: &'a M,
    cache: Option<&'a mut UnwindCache>,
    exact_pc: bool,
    depth: usize,
    last_cfa: Option<u64>,
    state: State,
    fde_info: Option<FdeInfo>,
}

/// What the FDE of the last yielded frame says beyond its rule: what a personality
/// routine needs (`_Unwind_GetRegionStart`, `_Unwind_GetLanguageSpecificData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdeInfo {
    /// The function's start (the FDE's initial location).
    pub func_start: u64,
    /// The function's end.
    pub func_end: u64,
    /// The personality routine's address (indirect pointers already read).
    pub personality: Option<u64>,
    /// The LSDA's address.
    pub lsda: Option<u64>,
    /// The FDE's address in memory.
    pub fde_address: u64,
}

/// A frame's step through a cached compact rule, read from memory but not applied: the
/// frame's CFA and its caller's return address and callee-saved registers.
#[derive(Clone, Copy, Debug)]
pub struct CachedStep {
    /// The frame's CFA (its caller's stack pointer).
    pub cfa: u64,
    ra: u64,
    n_saved: u8,
    saved: [(u16, u64); crate::rules::MAX_SAVED],
    /// The lookup PC to remember on the cache's path (its rule was not found there).
    remember: Option<usize>,
}

impl CachedStep {
    /// Turns a frame's registers into its caller's (stack pointer, saved registers and
    /// PC; the rest keep their values, as in every step).
    #[inline(always)]
    pub fn apply<R: Registers>(&self, regs: &mut R) {
        regs.set_sp(self.cfa);
        for &(reg, v) in &self.saved[..self.n_saved as usize] {
            regs.set(reg, v);
        }
        regs.set_pc(self.ra);
    }
}

/// How one frame's caller registers are obtained.
enum Step {
    Compact(CompactRule),
    /// Evaluated in place already (the rule needed the full evaluation).
    Evaluated {
        cfa: u64,
        ra_undefined: bool,
        signal: bool,
    },
    /// No unwind information: the walk ends with this frame.
    End,
}

impl<A: Arch, M: Memory> FrameIter<'_, A, M> {
    /// The registers of the frame the next call to `next` yields.
    pub fn registers(&self) -> &A::Regs {
        &self.regs
    }

    /// Writes the PCs of the remaining frames into `buf` and returns how many. Stops at
    /// the end of the stack, an error, or a full buffer. Frames whose compact rule is in
    /// the cache take [`FrameIter::walk_cached`], which builds no [`Frame`]: the warm
    /// backtrace.
    pub fn collect_pcs(mut self, buf: &mut [usize]) -> usize {
        struct Out<'b, R> {
            regs: R,
            buf: &'b mut [usize],
            n: usize,
        }
        let mut out = Out {
            regs: self.regs.clone(),
            buf,
            n: 0,
        };
        while out.n < out.buf.len() {
            let flow = self.walk_cached(
                &mut out,
                |o| &mut o.regs,
                |o, _cfa| {
                    o.buf[o.n] = o.regs.pc() as usize;
                    o.n += 1;
                    if o.n < o.buf.len() {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                },
            );
            if flow.is_break() {
                break;
            }
            match self.next() {
                Some(Ok(frame)) => {
                    out.buf[out.n] = frame.pc as usize;
                    out.n += 1;
                    out.regs = self.regs.clone();
                }
                _ => break,
            }
        }
        out.n
    }

    /// The CFA of the frame yielded (or stepped over) last.
    pub fn last_cfa(&self) -> Option<u64> {
        self.last_cfa
    }

    /// One frame through a cached compact rule, when that is all it takes: returns the
    /// frame's PC, with the walk advanced exactly as `next` would (without the frame's
    /// module, kind or FDE details). `None`, and nothing changed, when the frame needs
    /// the general path: call `next` then.
    #[inline]
    pub fn step_cached(&mut self) -> Option<u64> {
        let step = self.peek_cached()?;
        let pc = self.regs.pc();
        self.commit_step(&step);
        Some(pc)
    }

    /// The step `step_cached` would take, read but not applied: for a walker that shows
    /// the frame (its registers, its CFA) to someone before stepping past it, such as the
    /// Itanium `_Unwind_Backtrace`'s callback. Apply it with [`FrameIter::commit_step`].
    /// Every memory read happens here: a failed read gives `None` and changes nothing.
    // Inlined: the step is a dozen words that a call would return through memory and
    // the caller would reload at once (a store-forwarding stall on every frame).
    #[inline(always)]
    pub fn peek_cached(&self) -> Option<CachedStep> {
        if !matches!(self.state, State::Walking)
            || self.exact_pc
            || self.depth >= self.unwinder.max_depth
        {
            return None;
        }
        let (pc, sp) = (self.regs.pc(), self.regs.sp());
        let cache = self.cache.as_ref()?;
        let lookup = pc.checked_sub(1)? as usize;
        let (rule, on_path) = match cache.on_path(self.depth, lookup) {
            Some(rule) => (rule, true),
            None => (cache.get(lookup)?.1, false),
        };
        if rule.flags & (CompactRule::SIGNAL | CompactRule::RA_UNDEFINED) != 0 {
            return None;
        }
        let cfa = self
            .regs
            .get(rule.cfa_reg)?
            .wrapping_add(rule.cfa_off as i64 as u64);
        if cfa < sp || self.last_cfa.is_some_and(|last| cfa <= last) {
            return None;
        }
        let ra = self
            .mem
            .read_u64(cfa.wrapping_add(rule.ra_off as i64 as u64))
            .ok()?;
        let n_saved = rule.n_saved as usize;
        let mut saved = [(0u16, 0u64); crate::rules::MAX_SAVED];
        for (v, &(reg, off)) in saved.iter_mut().zip(&rule.saved[..n_saved]) {
            *v = (
                reg,
                self.mem
                    .read_u64(cfa.wrapping_add(off as i64 as u64))
                    .ok()?,
            );
        }
        Some(CachedStep {
            cfa,
            ra,
            n_saved: n_saved as u8,
            saved,
            remember: (!on_path).then_some(lookup),
        })
    }

    /// Steps past the current frame with what [`FrameIter::peek_cached`] read (nothing
    /// else may have moved the walk in between).
    #[inline(always)]
    pub fn commit_step(&mut self, step: &CachedStep) {
        if let (Some(pc), Some(cache)) = (step.remember, self.cache.as_deref_mut()) {
            cache.remember_path(self.depth, pc);
        }
        step.apply(&mut self.regs);
        self.depth += 1;
        self.last_cfa = Some(step.cfa);
        self.fde_info = None;
    }

    /// Walks on through cached compact rules, on registers the caller keeps inside `ctx`
    /// (`regs(ctx)`, equal to this iterator's registers on entry): for each frame,
    /// `visit(ctx, cfa)` sees the frame's registers and CFA, then the walk steps past it.
    /// `visit` is meant to read the registers (a trace callback): should it change
    /// them, the walk goes on from the changed ones, except the PC and stack pointer,
    /// which it keeps in locals.
    /// Returns when `visit` breaks (the walk is then over: `next` yields nothing more),
    /// or when a frame needs the general path (`next`); the iterator then stands where
    /// the walk stopped, its registers copied from `regs(ctx)` once (not per frame).
    ///
    /// This is the Itanium `_Unwind_Backtrace` loop: depth, last CFA and the cache stay
    /// in registers, each frame's rule comes from the cache's path (one compare), and
    /// the context the callback sees is updated in place, a few words per frame.
    #[inline]
    pub fn walk_cached<C, B>(
        &mut self,
        ctx: &mut C,
        regs: impl Fn(&mut C) -> &mut A::Regs,
        mut visit: impl FnMut(&mut C, u64) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if !matches!(self.state, State::Walking) || self.exact_pc {
            return ControlFlow::Continue(());
        }
        let Some(cache) = self.cache.as_deref_mut() else {
            return ControlFlow::Continue(());
        };
        let mem = self.mem;
        let max_depth = self.unwinder.max_depth;
        let (mut depth, mut last_cfa) = (self.depth, self.last_cfa);
        // The PC and SP stay in locals too (the context gets them stored, but the next
        // frame does not wait to load them back). The first ones come from the
        // iterator's copy (equal by contract): `regs(ctx)` was usually just copied
        // with wide stores that a narrow load cannot be forwarded from.
        let (mut pc, mut sp) = (self.regs.pc(), self.regs.sp());
        let flow = loop {
            if depth >= max_depth {
                break ControlFlow::Continue(());
            }
            let Some(lookup) = (pc as usize).checked_sub(1) else {
                break ControlFlow::Continue(());
            };
            let rule = if let Some(rule) = cache.on_path(depth, lookup) {
                rule
            } else {
                cache.remember_path(depth, lookup);
                match cache.get(lookup) {
                    Some((_, rule)) => rule,
                    None => break ControlFlow::Continue(()),
                }
            };
            if rule.flags & (CompactRule::SIGNAL | CompactRule::RA_UNDEFINED) != 0 {
                break ControlFlow::Continue(());
            }
            let base = if rule.cfa_reg == A::SP {
                sp
            } else {
                match regs(ctx).get(rule.cfa_reg) {
                    Some(v) => v,
                    None => break ControlFlow::Continue(()),
                }
            };
            let cfa = base.wrapping_add(rule.cfa_off as i64 as u64);
            if cfa < sp || last_cfa.is_some_and(|last| cfa <= last) {
                break ControlFlow::Continue(());
            }
            // Every read before the visit and any write: a failed read leaves the frame
            // to the general path, unvisited.
            let Ok(ra) = mem.read_u64(cfa.wrapping_add(rule.ra_off as i64 as u64)) else {
                break ControlFlow::Continue(());
            };
            let saved_rules = &rule.saved[..rule.n_saved as usize];
            let mut saved = [0u64; crate::rules::MAX_SAVED];
            let mut read_all = true;
            for (v, &(_, off)) in saved.iter_mut().zip(saved_rules) {
                match mem.read_u64(cfa.wrapping_add(off as i64 as u64)) {
                    Ok(x) => *v = x,
                    Err(_) => read_all = false,
                }
            }
            if !read_all {
                break ControlFlow::Continue(());
            }
            if let ControlFlow::Break(b) = visit(ctx, cfa) {
                break ControlFlow::Break(b);
            }
            let r = regs(ctx);
            r.set_sp(cfa);
            for (&v, &(reg, _)) in saved.iter().zip(saved_rules) {
                r.set(reg, v);
            }
            r.set_pc(ra);
            (pc, sp) = (ra, cfa);
            depth += 1;
            last_cfa = Some(cfa);
        };
        if flow.is_break() {
            // The visitor ended the walk: nothing to bring up to date.
            self.state = State::Done;
        } else if depth != self.depth {
            self.regs = regs(ctx).clone();
            self.depth = depth;
            self.last_cfa = last_cfa;
            self.fde_info = None;
        }
        flow
    }

    /// The FDE details of the frame `next` yielded last, when its rule came from an FDE
    /// rather than the rule cache (walk without a cache to always get them).
    pub fn fde_info(&self) -> Option<&FdeInfo> {
        self.fde_info.as_ref()
    }

    fn step(&mut self, lookup: u64) -> Result<(Step, Option<crate::ModuleId>, FrameKind), Error> {
        if let Some(cache) = &self.cache
            && let Some((module, rule)) = cache.get(lookup as usize)
        {
            let kind = match module {
                0 => FrameKind::Provided,
                _ => FrameKind::Module(kind_from_bits(rule.flags)),
            };
            return Ok((
                Step::Compact(*rule),
                (module != 0).then_some(crate::ModuleId(module)),
                kind,
            ));
        }
        // The CFI evaluation context lives only for this miss, on the stack: kept in the
        // iterator, its 5 KiB would be copied whenever the iterator moves.
        let mut ctx = UnwindContext::new_in();
        let mut walk = Walk {
            ctx: &mut ctx,
            regs: &mut self.regs,
            mem: self.mem,
            cache: self.cache.as_deref_mut(),
        };
        let guard = match &self.guard {
            Some(g) => g,
            None => self.guard.insert(self.unwinder.registry.pin()),
        };
        if let Some((module, entry)) = guard.find_fde(lookup as usize) {
            let fde = module.parse_fde(entry)?;
            self.fde_info = Some(fde_info(
                &fde,
                module.eh_frame().as_ptr() as u64 + u64::from(entry.offset),
                self.mem,
            ));
            let id = module.id();
            let kind = module.kind();
            let step = walk.evaluate::<A>(
                &fde,
                module.eh_frame_section(),
                module.bases(),
                lookup,
                id.0,
                kind,
            )?;
            return Ok((step, Some(id), FrameKind::Module(kind)));
        }
        if let Some(p) = self.unwinder.provider
            && let Some(m) = p.find_module(lookup as usize)
            && let Some((section, bases, fde)) = provided_fde(&m, lookup)
        {
            self.fde_info = Some(fde_info(
                &fde,
                m.eh_frame.as_ptr() as u64 + fde.offset() as u64,
                self.mem,
            ));
            let step = walk.evaluate::<A>(&fde, &section, &bases, lookup, 0, ModuleKind::Static)?;
            return Ok((step, None, FrameKind::Provided));
        }
        if self.unwinder.frame_pointer_fallback && self.regs.get(A::FP).is_some_and(|fp| fp != 0) {
            return Ok((
                Step::Compact(CompactRule::frame_pointer::<A>()),
                None,
                FrameKind::FramePointer,
            ));
        }
        Ok((Step::End, None, FrameKind::Unknown))
    }

    fn apply_compact(&mut self, rule: &CompactRule) -> Result<(u64, bool), Error> {
        let base = self
            .regs
            .get(rule.cfa_reg)
            .ok_or(Error::UnsupportedRule { pc: self.regs.pc() })?;
        let cfa = base.wrapping_add(rule.cfa_off as i64 as u64);
        let mut saved = [0u64; crate::rules::MAX_SAVED];
        for (v, &(_, off)) in saved.iter_mut().zip(&rule.saved[..rule.n_saved as usize]) {
            *v = self.mem.read_u64(cfa.wrapping_add(off as i64 as u64))?;
        }
        let ra_undefined = rule.flags & CompactRule::RA_UNDEFINED != 0;
        let ra = if ra_undefined {
            0
        } else {
            self.mem
                .read_u64(cfa.wrapping_add(rule.ra_off as i64 as u64))?
        };
        // The caller's SP is the CFA, unless a rule restores it (as `evaluate` does).
        self.regs.set_sp(cfa);
        for (&v, &(reg, _)) in saved.iter().zip(&rule.saved[..rule.n_saved as usize]) {
            self.regs.set(reg, v);
        }
        self.regs.set_pc(ra);
        Ok((cfa, ra_undefined))
    }
}

impl<A: Arch, M: Memory> Iterator for FrameIter<'_, A, M> {
    type Item = Result<Frame, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match core::mem::replace(&mut self.state, State::Done) {
            State::Walking => {}
            State::Failed(e) => return Some(Err(e)),
            State::Done => return None,
        }
        if self.depth >= self.unwinder.max_depth {
            return Some(Err(Error::TooDeep));
        }
        self.depth += 1;
        let (pc, sp) = (self.regs.pc(), self.regs.sp());
        if pc == 0 {
            return None;
        }
        let lookup = if self.exact_pc { pc } else { pc - 1 };
        self.fde_info = None;
        let mut frame = Frame {
            pc,
            sp,
            cfa: None,
            module: None,
            kind: FrameKind::Unknown,
            exact_pc: self.exact_pc,
        };
        let (step, module, kind) = match self.step(lookup) {
            Ok(s) => s,
            Err(e) => {
                self.state = State::Failed(e);
                return Some(Ok(frame));
            }
        };
        frame.module = module;
        frame.kind = kind;
        let outcome = match step {
            Step::End => return Some(Ok(frame)),
            Step::Compact(rule) => self
                .apply_compact(&rule)
                .map(|(cfa, end)| (cfa, end, rule.is_signal())),
            Step::Evaluated {
                cfa,
                ra_undefined,
                signal,
            } => Ok((cfa, ra_undefined, signal)),
        };
        match outcome {
            Err(e) => self.state = State::Failed(e),
            Ok((cfa, end, signal)) => {
                frame.cfa = Some(cfa);
                // The CFA must move up the stack, except in a signal frame and in the
                // frame it interrupted (`exact_pc` after a signal frame): that one may
                // run on another stack (sigaltstack), above or below the handler's.
                let across_stacks = frame.exact_pc && self.last_cfa.is_some();
                if !signal
                    && (!across_stacks && self.last_cfa.is_some_and(|last| cfa <= last) || cfa < sp)
                {
                    self.state = State::Failed(Error::CfaNotAdvancing { pc, cfa });
                } else if !end {
                    self.state = State::Walking;
                }
                self.last_cfa = Some(cfa);
                self.exact_pc = signal;
            }
        }
        Some(Ok(frame))
    }
}

/// The mutable parts of a walk that evaluating one FDE needs.
struct Walk<'w, R, M> {
    ctx: &'w mut UnwindContext,
    regs: &'w mut R,
    mem: &'w M,
    cache: Option<&'w mut UnwindCache>,
}

impl<R: Registers, M: Memory> Walk<'_, R, M> {
    fn evaluate<A: Arch>(
        &mut self,
        fde: &Fde,
        section: &EhFrame<Reader>,
        bases: &BaseAddresses,
        lookup: u64,
        module: u64,
        kind: ModuleKind,
    ) -> Result<Step, Error> {
        let bad = |error| Error::BadCfi { pc: lookup, error };
        let row = fde
            .unwind_info_for_address(section, bases, self.ctx, lookup)
            .map_err(bad)?;
        let signal = fde.cie().is_signal_trampoline();
        if let Some(mut rule) = CompactRule::compile(row, A::RA, signal) {
            rule.flags |= kind_bits(kind);
            if let Some(cache) = &mut self.cache {
                cache.insert(lookup as usize, module, rule);
            }
            return Ok(Step::Compact(rule));
        }
        let applied = evaluate::apply_row(
            row,
            section,
            fde.cie().encoding(),
            A::RA,
            self.regs,
            self.mem,
            lookup,
        )?;
        Ok(Step::Evaluated {
            cfa: applied.cfa,
            ra_undefined: applied.ra_undefined,
            signal,
        })
    }
}

fn fde_info<M: Memory>(fde: &Fde, fde_address: u64, mem: &M) -> FdeInfo {
    let resolve = |p: gimli::Pointer| match p {
        gimli::Pointer::Direct(a) => Some(a),
        gimli::Pointer::Indirect(a) => mem.read_u64(a).ok(),
    };
    FdeInfo {
        func_start: fde.initial_address(),
        func_end: fde.end_address(),
        personality: fde.personality().and_then(resolve),
        lsda: fde.lsda().and_then(resolve),
        fde_address,
    }
}

fn kind_bits(kind: ModuleKind) -> u8 {
    match kind {
        ModuleKind::Static => 0,
        ModuleKind::LoadedObject => 1 << 4,
        ModuleKind::Jit => 2 << 4,
    }
}

fn kind_from_bits(flags: u8) -> ModuleKind {
    match (flags >> 4) & 3 {
        1 => ModuleKind::LoadedObject,
        2 => ModuleKind::Jit,
        _ => ModuleKind::Static,
    }
}

/// Finds the FDE for `pc` in a provided module: through `.eh_frame_hdr`'s table when
/// present, else by a linear search.
fn provided_fde(
    m: &crate::provider::ProvidedModule,
    pc: u64,
) -> Option<(EhFrame<Reader>, BaseAddresses, Fde)> {
    let mut section = EhFrame::new(m.eh_frame, gimli::NativeEndian);
    section.set_address_size(core::mem::size_of::<usize>() as u8);
    let mut bases = BaseAddresses::default()
        .set_eh_frame(m.eh_frame.as_ptr() as u64)
        .set_text(m.text.start as u64);
    let fde = match m.eh_frame_hdr {
        Some(hdr) => {
            bases = bases.set_eh_frame_hdr(hdr.as_ptr() as u64);
            let parsed = gimli::EhFrameHdr::new(hdr, gimli::NativeEndian)
                .parse(&bases, core::mem::size_of::<usize>() as u8)
                .ok()?;
            parsed
                .table()?
                .fde_for_address(&section, &bases, pc, EhFrame::cie_from_offset)
                .ok()?
        }
        None => section
            .fde_for_address(&bases, pc, EhFrame::cie_from_offset)
            .ok()?,
    };
    Some((section, bases, fde))
}
