//! A sample dump with every kind of record, and what it should decode to.
#![allow(dead_code)]

use std::ops::Range;

use clew_tracer::clock::{ClockInfo, ClockKind, NoClock};
use clew_tracer::dump::{DumpWriter, ModuleOptions, Summary};
use clew_tracer::{EventId, Recorder, Sink};
use clew_unwinder::{ModuleDesc, ModuleKind, Registry, Symbol, SymbolMap};
use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EhFrame, EndianVec,
    FrameDescriptionEntry, FrameTable,
};
use gimli::{Encoding, Format, LittleEndian, Register};

/// A `.eh_frame` with one FDE per 0x40 bytes of `text` (absolute pointers), leaked.
pub fn eh_frame_for(text: Range<u64>) -> &'static [u8] {
    let enc = Encoding {
        format: Format::Dwarf32,
        version: 1,
        address_size: 8,
    };
    let mut table = FrameTable::default();
    let mut cie = CommonInformationEntry::new(enc, 1, -8, Register(16));
    cie.add_instruction(CallFrameInstruction::Cfa(Register(7), 8));
    cie.add_instruction(CallFrameInstruction::Offset(Register(16), -8));
    let cie = table.add_cie(cie);
    let mut a = text.start;
    while a < text.end {
        let mut fde = FrameDescriptionEntry::new(Address::Constant(a), 0x40);
        fde.add_instruction(1, CallFrameInstruction::CfaOffset(16));
        table.add_fde(cie, fde);
        a += 0x40;
    }
    let mut out = EhFrame(EndianVec::new(LittleEndian));
    table.write_eh_frame(&mut out).unwrap();
    let mut v = out.0.into_vec();
    v.extend_from_slice(&[0, 0, 0, 0]);
    Vec::leak(v)
}

pub const JIT_TEXT: Range<u64> = 0x5000_0000..0x5000_4000;
pub const STATIC_TEXT: Range<u64> = 0x40_0000..0x40_1000;
pub const TASK: u64 = 4242;
pub const STACK_BASE: u64 = 0x7ffd_0000_1000;

/// A registry with a static module and a JIT module with 300 symbols.
pub fn sample_registry() -> Registry {
    let reg = Registry::new();
    let eh = eh_frame_for(STATIC_TEXT);
    // SAFETY: leaked bytes live forever.
    unsafe {
        reg.register(&ModuleDesc {
            name: "/usr/bin/app",
            kind: ModuleKind::Static,
            text: Some(STATIC_TEXT.start as usize..STATIC_TEXT.end as usize),
            eh_frame: eh,
            eh_frame_hdr: None,
            lsda: None,
        })
        .unwrap();
    }
    let eh = eh_frame_for(JIT_TEXT);
    let syms = (0..300u64)
        .map(|i| Symbol {
            range: (JIT_TEXT.start + i * 0x30) as usize
                ..(JIT_TEXT.start + i * 0x30 + 0x28) as usize,
            name: format!("wasm[0]::function[{i}]::some_rather_long_function_name_{i}"),
        })
        .collect();
    // SAFETY: as above.
    unsafe {
        reg.register_with_symbols(
            &ModuleDesc {
                name: "wasm module demo.wasm",
                kind: ModuleKind::Jit,
                text: Some(JIT_TEXT.start as usize..JIT_TEXT.end as usize),
                eh_frame: eh,
                eh_frame_hdr: None,
                lsda: None,
            },
            SymbolMap::new(syms, vec![]),
        )
        .unwrap();
    }
    reg
}

pub type SmallRecorder = Recorder<NoClock, 3, 256>;

/// Fills rings 0 and 1 and the shared ring; returns how many events they still hold.
pub fn fill(rec: &SmallRecorder) -> u64 {
    let a = rec.attach(100).unwrap();
    let b = rec.attach(200).unwrap();
    for i in 0..400u64 {
        a.record_at(1000 + i * 37, EventId::user(1), &[i, i % 7]);
        if i % 2 == 0 {
            b.record_at(1001 + i * 37, EventId::user(2), &[i * 1000, 3, 0xdead_beef]);
        }
    }
    for i in 0..10u64 {
        rec.record_shared(5, 300 + i, EventId::BREAKPOINT, &[0x5000_0100 + i, i]);
    }
    core::mem::forget(a);
    core::mem::forget(b);
    256 + 200 + 10
}

pub fn stack_bytes() -> &'static [u8] {
    static S: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    S.get_or_init(|| (0..5000u32).map(|i| (i * 7 + 3) as u8).collect())
}

pub fn pcs() -> &'static [usize] {
    static S: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    S.get_or_init(|| (0..200usize).map(|i| 0x5000_0000 + i * 0x30 + 5).collect())
}

pub fn regs() -> [u64; 17] {
    let mut r = [0u64; 17];
    for (i, v) in r.iter_mut().enumerate() {
        *v = 0x1111 * i as u64;
    }
    r[7] = STACK_BASE;
    r[16] = 0x5000_0105;
    r
}

/// Writes the sample dump to `sink`.
pub fn write_sample<S: Sink>(sink: S, reg: &Registry, rec: &SmallRecorder) -> (S, Summary) {
    let mut w = DumpWriter::new(sink);
    let clock = ClockInfo {
        kind: ClockKind::Tsc,
        hz: 2_600_000_000,
    };
    let _ = w.header("sample 1.0", clock, 99_999);
    let msg = "index out of bounds";
    let _ = w.cause_panic(
        &format_args!("{msg}: the len is {} but the index is {}", 3, 7),
        Some(core::panic::Location::caller()),
        TASK,
    );
    let _ = w.modules(reg, &ModuleOptions::default());
    let _ = w.registers_raw(TASK, clew_tracer::wire::arch::X86_64, &regs());
    let _ = w.stack(TASK, STACK_BASE, stack_bytes(), true);
    let _ = w.backtrace(TASK, pcs());
    let _ = w.events(rec);
    let _ = w.note("a note");
    w.finish()
}

/// The sample dump's bytes.
pub fn sample() -> Vec<u8> {
    let reg = sample_registry();
    let rec = SmallRecorder::new(NoClock);
    fill(&rec);
    write_sample(Vec::new(), &reg, &rec).0
}
