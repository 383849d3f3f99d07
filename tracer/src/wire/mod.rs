//! The dump's wire format: the records (postcard, serde) and their limits. `FORMAT.md`
//! in this crate is the normative description; keep the two in step.
//!
//! Every record is one variant of [`Record`]. Variant numbers are fixed forever: new
//! kinds of records get new numbers at the end, new fields go at the end of a variant
//! (decoders ignore trailing bytes), so old decoders skip what they do not know.

mod bytes;
pub mod events;
pub mod varint;

use serde::{Deserialize, Serialize};

pub use crate::clock::{ClockInfo, ClockKind};
pub use bytes::Bytes;

/// The first bytes of every header.
pub const MAGIC: [u8; 4] = *b"CLEW";
/// Incompatible changes bump the major version: a decoder stops at a major it does not
/// know. Compatible ones (new records, new trailing fields) bump the minor.
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 1;

/// The most bytes a record's postcard encoding takes in a dump written by this crate
/// (the CRC and the framing come on top).
pub const MAX_PAYLOAD: usize = 1024;
/// The largest encoded frame a decoder accepts (64 KiB; writers use less).
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest names (modules, symbols, files) and panic message kept; longer ones are cut
/// at a character boundary.
pub const MAX_NAME: usize = 256;
pub const MAX_MESSAGE: usize = 512;

/// ELF `e_machine` values naming architectures in the header.
pub mod arch {
    pub const X86_64: u16 = 62;
    pub const AARCH64: u16 = 183;
    pub const RISCV: u16 = 243;

    /// The architecture this crate was built for (0: unknown).
    pub const NATIVE: u16 = if cfg!(target_arch = "x86_64") {
        X86_64
    } else if cfg!(target_arch = "aarch64") {
        AARCH64
    } else if cfg!(any(target_arch = "riscv64", target_arch = "riscv32")) {
        RISCV
    } else {
        0
    };
}

/// One record. The variant's index is its kind on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record<'a> {
    #[serde(borrow)]
    Header(Header<'a>),
    #[serde(borrow)]
    Cause(Cause<'a>),
    #[serde(borrow)]
    Module(ModuleRecord<'a>),
    #[serde(borrow)]
    EhFrame(EhFrameChunk<'a>),
    #[serde(borrow)]
    Symbols(SymbolsRecord<'a>),
    #[serde(borrow)]
    Registers(RegistersRecord<'a>),
    StackInfo(StackInfo),
    #[serde(borrow)]
    Stack(StackChunk<'a>),
    #[serde(borrow)]
    Backtrace(BacktraceRecord<'a>),
    Ring(RingRecord),
    #[serde(borrow)]
    Events(EventsRecord<'a>),
    Note(&'a str),
    End(EndRecord),
    /// Since 1.1.
    #[serde(borrow)]
    SourceOffsets(SourceOffsetsRecord<'a>),
}

impl Record<'_> {
    /// How many kinds of records this version knows (kinds `0..KINDS`).
    pub const KINDS: u64 = 14;
}

/// The first record: what wrote the dump, for which machine, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header<'a> {
    pub magic: [u8; 4],
    pub major: u16,
    pub minor: u16,
    /// ELF `e_machine` ([`arch`]).
    pub arch: u16,
    /// Pointer width in bytes.
    pub pointer_width: u8,
    pub big_endian: bool,
    /// What event timestamps count.
    pub clock: ClockInfo,
    /// The clock when the dump was written.
    pub timestamp: u64,
    /// Wall-clock time of the dump, nanoseconds since the Unix epoch, when known.
    pub wall_ns: Option<u64>,
    /// The writer: program and library names and versions.
    pub producer: &'a str,
    /// The largest record payload this writer produces.
    pub max_payload: u32,
}

/// Why the dump was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cause<'a> {
    Panic {
        message: &'a str,
        /// The message was longer than [`MAX_MESSAGE`] and was cut.
        truncated: bool,
        file: &'a str,
        line: u32,
        column: u32,
        task: u64,
    },
    Trap {
        kind: TrapKind,
        pc: u64,
        /// The faulting address (page faults, signals with `si_addr`).
        address: Option<u64>,
        /// The CPU's error code or the signal's `si_code`.
        code: u64,
        task: u64,
    },
    Breakpoint {
        pc: u64,
        task: u64,
    },
    /// Written on request (`monitor dump`, a user command).
    Requested {
        reason: &'a str,
        task: u64,
    },
}

/// A trap: a CPU exception (by vector) or a POSIX signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrapKind {
    /// A CPU exception vector (x86: 0 divide error, 3 breakpoint, 6 invalid opcode,
    /// 8 double fault, 13 general protection, 14 page fault, ...).
    Exception(u8),
    /// A POSIX signal number.
    Signal(i32),
}

impl TrapKind {
    /// The code a [`EventId::TRAP`](crate::event::EventId::TRAP) event carries: the
    /// vector, or `0x1000 + signal`.
    pub fn code(self) -> u64 {
        match self {
            TrapKind::Exception(v) => u64::from(v),
            TrapKind::Signal(s) => 0x1000 + s as u32 as u64,
        }
    }

    /// A short name (`page fault`, `SIGSEGV`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TrapKind::Exception(0) => "divide error",
            TrapKind::Exception(1) => "debug",
            TrapKind::Exception(2) => "NMI",
            TrapKind::Exception(3) => "breakpoint",
            TrapKind::Exception(4) => "overflow",
            TrapKind::Exception(5) => "bound range exceeded",
            TrapKind::Exception(6) => "invalid opcode",
            TrapKind::Exception(7) => "device not available",
            TrapKind::Exception(8) => "double fault",
            TrapKind::Exception(10) => "invalid TSS",
            TrapKind::Exception(11) => "segment not present",
            TrapKind::Exception(12) => "stack-segment fault",
            TrapKind::Exception(13) => "general protection fault",
            TrapKind::Exception(14) => "page fault",
            TrapKind::Exception(16) => "x87 floating-point exception",
            TrapKind::Exception(17) => "alignment check",
            TrapKind::Exception(18) => "machine check",
            TrapKind::Exception(19) => "SIMD floating-point exception",
            TrapKind::Exception(_) => "exception",
            TrapKind::Signal(4) => "SIGILL",
            TrapKind::Signal(5) => "SIGTRAP",
            TrapKind::Signal(6) => "SIGABRT",
            TrapKind::Signal(7) => "SIGBUS",
            TrapKind::Signal(8) => "SIGFPE",
            TrapKind::Signal(11) => "SIGSEGV",
            TrapKind::Signal(_) => "signal",
        }
    }
}

/// Where a module's code came from (the registry's `ModuleKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModuleKind {
    Static,
    LoadedObject,
    Jit,
}

/// A module of the code map. Its `.eh_frame` follows in [`EhFrameChunk`]s when
/// `eh_frame_included`, its symbols in [`SymbolsRecord`]s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleRecord<'a> {
    pub id: u64,
    pub kind: ModuleKind,
    pub text_start: u64,
    pub text_end: u64,
    pub name: &'a str,
    #[serde(borrow)]
    pub build_id: Option<Bytes<'a>>,
    /// The runtime address and length of its `.eh_frame` (CFI pointers are relative to it).
    pub eh_frame_addr: u64,
    pub eh_frame_len: u64,
    pub eh_frame_included: bool,
    /// How many symbols follow in [`SymbolsRecord`]s.
    pub symbols: u32,
}

/// `bytes` of module `module`'s `.eh_frame`, from byte `offset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EhFrameChunk<'a> {
    pub module: u64,
    pub offset: u64,
    #[serde(borrow)]
    pub bytes: Bytes<'a>,
}

/// Symbols `first..first + count` of module `module`. `data` holds `count` entries, each
/// the postcard encoding of `(i64, u64, &str)`: the start minus the previous entry's
/// start (the first: minus the module's text start), the length, the name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SymbolsRecord<'a> {
    pub module: u64,
    pub first: u32,
    pub count: u32,
    #[serde(borrow)]
    pub data: Bytes<'a>,
}

/// A task's registers: little-endian 64-bit words in DWARF register order (x86_64:
/// rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8–r15, then the return address / rip).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistersRecord<'a> {
    pub task: u64,
    pub arch: u16,
    #[serde(borrow)]
    pub regs: Bytes<'a>,
}

/// A task's stack snapshot covers `start..end` ([`StackChunk`]s follow); `truncated`
/// when the stack went on past `end` (the copy is bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackInfo {
    pub task: u64,
    pub start: u64,
    pub end: u64,
    pub truncated: bool,
}

/// Stack bytes of task `task` at address `addr`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackChunk<'a> {
    pub task: u64,
    pub addr: u64,
    #[serde(borrow)]
    pub bytes: Bytes<'a>,
}

/// PCs `first..` of task `task`'s backtrace (innermost first), little-endian 64-bit words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BacktraceRecord<'a> {
    pub task: u64,
    pub first: u32,
    #[serde(borrow)]
    pub pcs: Bytes<'a>,
}

/// A ring's state when it was dumped. Its events follow in [`EventsRecord`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingRecord {
    pub ring: u32,
    /// The shared multi-producer ring (else a per-thread/per-CPU ring).
    pub shared: bool,
    /// The task that owned it last (0: none).
    pub owner: u64,
    pub capacity: u32,
    /// Events ever recorded (the next position).
    pub head: u64,
    /// Events dropped by the shared ring's producers.
    pub dropped: u64,
}

/// `count` events of ring `ring`, oldest first, in the compact encoding of
/// [`events`]: positions from `first_pos`, timestamps, CPUs and tasks as deltas from
/// `base_ts`, `base_cpu`, `base_task` and then from the previous event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsRecord<'a> {
    pub ring: u32,
    pub first_pos: u64,
    pub count: u32,
    pub base_ts: u64,
    pub base_cpu: u32,
    pub base_task: u64,
    #[serde(borrow)]
    pub data: Bytes<'a>,
}

/// Part of a JIT module's code address → source offset map (Wasmtime: wasm bytecode
/// offsets): `count` entries, each `zigzag(address - previous address)` (the first:
/// minus the module's `text_start`) and `offset + 1` (0: no source position), varints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceOffsetsRecord<'a> {
    pub module: u64,
    pub count: u32,
    #[serde(borrow)]
    pub data: Bytes<'a>,
}

/// The last record: how many records (this one excluded), events and bytes came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRecord {
    pub records: u32,
    pub events: u64,
    pub bytes: u64,
}

/// `s` cut to at most `max` bytes at a character boundary, and whether it was cut.
pub fn truncate_str(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}
