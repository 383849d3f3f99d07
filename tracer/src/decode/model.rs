//! What a decoded dump holds: owned, host-side types.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use crate::clock::ClockInfo;
use crate::event::Event;
use crate::wire::{EndRecord, ModuleKind, StackInfo, TrapKind};

/// Everything intact in a dump.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dump {
    pub header: Option<DumpHeader>,
    pub cause: Option<DumpCause>,
    /// In the order written (the registry's id order).
    pub modules: Vec<DumpModule>,
    /// Per task: registers, stack, backtrace. The failing task is the cause's `task`.
    pub tasks: Vec<TaskState>,
    pub rings: Vec<RingState>,
    /// Every ring's events merged by timestamp (then ring, position): newest last.
    pub events: Vec<DecodedEvent>,
    pub notes: Vec<String>,
    pub end: Option<EndRecord>,
    /// Intact records read.
    pub records: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpHeader {
    pub major: u16,
    pub minor: u16,
    /// ELF `e_machine` ([`crate::wire::arch`]).
    pub arch: u16,
    pub pointer_width: u8,
    pub big_endian: bool,
    pub clock: ClockInfo,
    pub timestamp: u64,
    pub wall_ns: Option<u64>,
    pub producer: String,
    pub max_payload: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpCause {
    Panic {
        message: String,
        truncated: bool,
        file: String,
        line: u32,
        column: u32,
        task: u64,
    },
    Trap {
        kind: TrapKind,
        pc: u64,
        address: Option<u64>,
        code: u64,
        task: u64,
    },
    Breakpoint {
        pc: u64,
        task: u64,
    },
    Requested {
        reason: String,
        task: u64,
    },
}

impl DumpCause {
    /// The task that failed.
    pub fn task(&self) -> u64 {
        match self {
            DumpCause::Panic { task, .. }
            | DumpCause::Trap { task, .. }
            | DumpCause::Breakpoint { task, .. }
            | DumpCause::Requested { task, .. } => *task,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpModule {
    pub id: u64,
    pub kind: ModuleKind,
    pub text: Range<u64>,
    pub name: String,
    pub build_id: Option<Vec<u8>>,
    /// The `.eh_frame`'s runtime address (its CFI's pointers are relative to it).
    pub eh_frame_addr: u64,
    pub eh_frame_len: u64,
    /// The whole `.eh_frame`, when the dump carried it and every chunk was intact.
    pub eh_frame: Option<Vec<u8>>,
    /// Symbols, sorted by address (those of intact records).
    pub symbols: Vec<DumpSymbol>,
    /// How many symbols the writer wrote.
    pub symbols_written: u32,
    /// Code address → source offset (wasm bytecode offset), sorted (those of intact
    /// records; format 1.1).
    pub source_offsets: Vec<(u64, Option<u32>)>,
}

impl DumpModule {
    /// The source offset of the code at `addr`, if the dump carried one.
    pub fn source_offset(&self, addr: u64) -> Option<u32> {
        let i = self.source_offsets.partition_point(|&(a, _)| a <= addr);
        self.source_offsets.get(i.checked_sub(1)?)?.1
    }

    /// The symbol holding `addr`.
    pub fn symbol(&self, addr: u64) -> Option<&DumpSymbol> {
        let i = self.symbols.partition_point(|s| s.range.start <= addr);
        self.symbols[..i]
            .iter()
            .rev()
            .take(4)
            .find(|s| s.range.contains(&addr))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpSymbol {
    pub range: Range<u64>,
    pub name: String,
}

/// A task's dumped state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    pub task: u64,
    /// `(arch, registers in DWARF order)`.
    pub registers: Option<(u16, Vec<u64>)>,
    /// What the writer meant to copy.
    pub stack_info: Option<StackInfo>,
    /// The intact stack bytes, contiguous runs sorted by address.
    pub stack: Vec<StackSegment>,
    /// Backtrace PCs, innermost first (those of intact records; see the problems for
    /// holes).
    pub backtrace: Vec<u64>,
}

impl TaskState {
    /// The stack segment holding `addr`.
    pub fn stack_at(&self, addr: u64) -> Option<&StackSegment> {
        self.stack
            .iter()
            .find(|s| addr >= s.addr && addr - s.addr < s.bytes.len() as u64)
    }
}

/// Stack memory at `addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackSegment {
    pub addr: u64,
    pub bytes: Vec<u8>,
}

impl StackSegment {
    /// The segment as unwinder memory, for re-unwinding on the host.
    pub fn memory(&self) -> clew_unwinder::SliceMemory<'_> {
        clew_unwinder::SliceMemory {
            base: self.addr,
            bytes: &self.bytes,
        }
    }
}

/// A ring's state when dumped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingState {
    pub ring: u32,
    pub shared: bool,
    pub owner: u64,
    pub capacity: u32,
    /// Events ever recorded in it.
    pub head: u64,
    /// Events its producers dropped.
    pub dropped: u64,
    /// Events of it in the dump.
    pub events: u64,
}

/// An event with the ring and position it was recorded at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedEvent {
    pub ring: u32,
    pub pos: u64,
    pub event: Event,
}
