//! Helpers shared by the synthetic-CFI tests: `.eh_frame` sections built with
//! `gimli::write` for fake functions, leaked next to a fake text range so that
//! pc-relative pointers stay in range, synthetic stacks, and walks checked to give the
//! same result without a rule cache, with a cold one and with a warm one.
#![allow(dead_code)]

use std::ops::Range;

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::{
    Error, Frame, Memory, ModuleDesc, ModuleHandle, ModuleKind, Native, Registry, SliceMemory,
    UnwindCache, Unwinder,
};
use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EhFrame, EndianVec, Expression,
    FrameDescriptionEntry, FrameTable,
};
use gimli::{DwEhPe, Encoding, Format, LittleEndian, Register};

pub use gimli::write::CallFrameInstruction as I;

pub const RAX: Register = Register(0);
pub const RDX: Register = Register(1);
pub const RCX: Register = Register(2);
pub const RBX: Register = Register(3);
pub const RSI: Register = Register(4);
pub const RDI: Register = Register(5);
pub const RBP: Register = Register(6);
pub const RSP: Register = Register(7);
pub const R8: Register = Register(8);
pub const R11: Register = Register(11);
pub const R12: Register = Register(12);
pub const R13: Register = Register(13);
pub const R14: Register = Register(14);
pub const R15: Register = Register(15);
pub const RA: Register = Register(16);

pub const ENCODING: Encoding = Encoding {
    format: Format::Dwarf32,
    version: 1,
    address_size: 8,
};

pub const ABSPTR: DwEhPe = gimli::constants::DW_EH_PE_absptr;
pub const PCREL_SDATA4: DwEhPe =
    DwEhPe(gimli::constants::DW_EH_PE_pcrel.0 | gimli::constants::DW_EH_PE_sdata4.0);
pub const UDATA8: DwEhPe = gimli::constants::DW_EH_PE_udata8;
pub const SDATA8: DwEhPe = gimli::constants::DW_EH_PE_sdata8;

/// The FDE pointer encodings every synthetic-CFI test is run with.
pub const ENCODINGS: [(&str, DwEhPe); 4] = [
    ("absptr", ABSPTR),
    ("pcrel|sdata4", PCREL_SDATA4),
    ("udata8", UDATA8),
    ("sdata8", SDATA8),
];

/// A CIE: FDE pointer encoding, signal-frame augmentation, initial instructions.
#[derive(Clone, Debug)]
pub struct CieSpec {
    pub encoding: DwEhPe,
    pub signal: bool,
    pub initial: Vec<CallFrameInstruction>,
}

impl CieSpec {
    /// The usual x86_64 CIE: CFA = rsp + 8, return address at CFA - 8.
    pub fn standard(encoding: DwEhPe) -> Self {
        CieSpec {
            encoding,
            signal: false,
            initial: vec![I::Cfa(RSP, 8), I::Offset(RA, -8)],
        }
    }
    pub fn signal(mut self) -> Self {
        self.signal = true;
        self
    }
    pub fn with(mut self, i: CallFrameInstruction) -> Self {
        self.initial.push(i);
        self
    }
}

/// An FDE for `start .. start + len` (offsets into the module's text), using CIE `cie`.
#[derive(Clone, Debug)]
pub struct FdeSpec {
    pub cie: usize,
    pub start: u64,
    pub len: u32,
    pub instrs: Vec<(u32, CallFrameInstruction)>,
}

pub fn fde(start: u64, len: u32, instrs: Vec<(u32, CallFrameInstruction)>) -> FdeSpec {
    FdeSpec {
        cie: 0,
        start,
        len,
        instrs,
    }
}

pub fn fde_cie(
    cie: usize,
    start: u64,
    len: u32,
    instrs: Vec<(u32, CallFrameInstruction)>,
) -> FdeSpec {
    FdeSpec {
        cie,
        start,
        len,
        instrs,
    }
}

/// A DWARF expression from raw bytecode.
pub fn expr(bytes: &[u8]) -> Expression {
    Expression::raw(bytes.to_vec())
}

/// Builds a zero-terminated `.eh_frame` whose FDEs cover `text_start + fde.start ..`,
/// as it must read when the section itself lives at `section_addr`.
pub fn build_eh_frame(
    cies: &[CieSpec],
    fdes: &[FdeSpec],
    text_start: u64,
    section_addr: u64,
) -> Vec<u8> {
    let mut table = FrameTable::default();
    let ids: Vec<_> = cies
        .iter()
        .map(|c| {
            let mut cie = CommonInformationEntry::new(ENCODING, 1, -8, RA);
            cie.fde_address_encoding = c.encoding;
            cie.signal_trampoline = c.signal;
            for i in &c.initial {
                cie.add_instruction(i.clone());
            }
            table.add_cie(cie)
        })
        .collect();
    for f in fdes {
        let c = &cies[f.cie];
        let addr = text_start.wrapping_add(f.start);
        let addr = if c.encoding.application() == gimli::constants::DW_EH_PE_pcrel {
            // gimli writes pc-relative pointers relative to the section's offset 0.
            addr.wrapping_sub(section_addr)
        } else {
            addr
        };
        let mut fde = FrameDescriptionEntry::new(Address::Constant(addr), f.len);
        for (off, i) in &f.instrs {
            fde.add_instruction(*off, i.clone());
        }
        table.add_fde(ids[f.cie], fde);
    }
    let mut eh = EhFrame(EndianVec::new(LittleEndian));
    table.write_eh_frame(&mut eh).expect("gimli::write");
    let mut v = eh.0.into_vec();
    v.extend_from_slice(&[0; 4]);
    v
}

/// A fake module: a text range (never executed, only its addresses matter) and the
/// `.eh_frame` describing it.
#[derive(Clone, Debug)]
pub struct Synth {
    pub text: Range<usize>,
    pub eh_frame: &'static [u8],
}

impl Synth {
    /// The address `off` bytes into the text.
    pub fn at(&self, off: u64) -> u64 {
        self.text.start as u64 + off
    }

    pub fn desc(&self, kind: ModuleKind) -> ModuleDesc<'static> {
        ModuleDesc {
            name: "synthetic",
            kind,
            text: Some(self.text.clone()),
            eh_frame: self.eh_frame,
            eh_frame_hdr: None,
            lsda: None,
        }
    }

    pub fn register(&self, reg: &Registry, kind: ModuleKind) -> Result<ModuleHandle, Error> {
        // SAFETY: the section is leaked.
        unsafe { reg.register(&self.desc(kind)) }
    }
}

/// Leaks one heap allocation holding `text_len` bytes of fake text followed by the
/// `.eh_frame` describing `fdes` in it (so pc-relative `sdata4` pointers always fit).
pub fn leak_module(text_len: usize, cies: &[CieSpec], fdes: &[FdeSpec]) -> Synth {
    let probe = build_eh_frame(cies, fdes, 0x1000_0000, 0x2000_0000);
    let eh_off = (text_len + 15) & !15;
    let buf: &'static mut [u8] = Box::leak(vec![0u8; eh_off + probe.len()].into_boxed_slice());
    let text_start = buf.as_ptr() as u64;
    let bytes = build_eh_frame(cies, fdes, text_start, text_start + eh_off as u64);
    assert_eq!(
        bytes.len(),
        probe.len(),
        "section size depends on addresses"
    );
    buf[eh_off..].copy_from_slice(&bytes);
    let buf: &'static [u8] = buf;
    Synth {
        text: text_start as usize..text_start as usize + text_len,
        eh_frame: &buf[eh_off..],
    }
}

/// Leaks an `.eh_frame` for a text range at a fixed (unbacked) address. Absolute
/// encodings only.
pub fn leak_module_at(text: Range<usize>, cies: &[CieSpec], fdes: &[FdeSpec]) -> Synth {
    let bytes = build_eh_frame(cies, fdes, text.start as u64, 0);
    Synth {
        text,
        eh_frame: Box::leak(bytes.into_boxed_slice()),
    }
}

/// The value every stack word holds unless a test writes it: recognisable, and never
/// a PC of a registered module nor a plausible stack address.
pub fn pattern(addr: u64) -> u64 {
    addr ^ 0xA5A5_0000_0000_0000
}

/// A synthetic stack at a chosen (fake) address, read through [`SliceMemory`].
#[derive(Clone, Debug)]
pub struct Stack {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl Stack {
    /// `words` 8-byte words at `base`, each initialised to [`pattern`] of its address.
    pub fn new(base: u64, words: usize) -> Self {
        let mut s = Stack {
            base,
            bytes: vec![0; words * 8],
        };
        for i in 0..words {
            let a = s.addr(i);
            s.set(a, pattern(a));
        }
        s
    }
    pub fn addr(&self, word: usize) -> u64 {
        self.base + 8 * word as u64
    }
    pub fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
    pub fn set(&mut self, addr: u64, v: u64) {
        let off = (addr - self.base) as usize;
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    pub fn get(&self, addr: u64) -> u64 {
        let off = (addr - self.base) as usize;
        u64::from_le_bytes(self.bytes[off..off + 8].try_into().unwrap())
    }
    pub fn mem(&self) -> SliceMemory<'_> {
        SliceMemory {
            base: self.base,
            bytes: &self.bytes,
        }
    }
}

/// A register set with `pc`, `sp` and the given registers; every other register holds
/// a distinct recognisable value.
pub fn regs(pc: u64, sp: u64, set: &[(Register, u64)]) -> Regs {
    let mut r = Regs::default();
    for (i, g) in r.gpr.iter_mut().enumerate() {
        *g = 0x1111_0000_0000_0000 | (i as u64) << 32;
    }
    r.gpr[16] = pc;
    r.gpr[7] = sp;
    for &(reg, v) in set {
        r.gpr[reg.0 as usize] = v;
    }
    r
}

/// One walk: every yielded item, and the registers before each `next()` call
/// (`regs[i]` are frame `i`'s registers; the last entry is what is left at the end).
#[derive(Clone, Debug, PartialEq)]
pub struct Walk {
    pub frames: Vec<Result<Frame, Error>>,
    pub regs: Vec<Regs>,
}

impl Walk {
    /// The frames, panicking on an error.
    pub fn ok(&self) -> Vec<Frame> {
        self.frames
            .iter()
            .map(|f| f.unwrap_or_else(|e| panic!("walk failed: {e}: {self:#?}")))
            .collect()
    }
    /// The error the walk ended with, if any.
    pub fn error(&self) -> Option<Error> {
        self.frames.last().and_then(|f| f.err())
    }
}

/// Walks once, bounding the number of items to `limit`.
pub fn walk_once<M: Memory>(
    u: &Unwinder<'_, Native>,
    r: Regs,
    exact: bool,
    mem: &M,
    cache: Option<&mut UnwindCache>,
    limit: usize,
) -> Walk {
    let mut it = u.frames(r, exact, mem, cache);
    let mut w = Walk {
        frames: Vec::new(),
        regs: Vec::new(),
    };
    loop {
        w.regs.push(*it.registers());
        match it.next() {
            Some(f) => w.frames.push(f),
            None => break,
        }
        assert!(w.frames.len() <= limit, "walk did not stop: {w:#?}");
    }
    // An ended walk stays ended.
    assert!(it.next().is_none());
    w
}

/// Walks without a cache, then twice with one fresh cache (cold, then warm), and checks
/// that the three walks agree.
pub fn walk<M: Memory>(u: &Unwinder<'_, Native>, r: Regs, exact: bool, mem: &M) -> Walk {
    let plain = walk_once(u, r, exact, mem, None, 64);
    let mut cache = Box::new(UnwindCache::new());
    let cold = walk_once(u, r, exact, mem, Some(&mut cache), 64);
    let warm = walk_once(u, r, exact, mem, Some(&mut cache), 64);
    assert_eq!(plain, cold, "a cold cache changed the walk");
    assert_eq!(plain, warm, "a warm cache changed the walk");
    plain
}
