//! `clew decode DUMP [--json] [--search DIR...]`: a post-mortem dump (written by
//! `clew-tracer`, e.g. by `clew run --dump`) turned into a report on the host.
//!
//! ```text
//! dump file ─► clew_tracer::decode ─► Dump (intact records) + Problems (offset, reason)
//!                                      │
//!     JIT modules: dumped .eh_frame ───┤ Registry::register_relocated at the ORIGINAL
//!     native modules: ELF on disk ─────┤ .eh_frame address (bias = dumped address −
//!       (path in the dump, --search,   │ the file's section address), build-id checked
//!        build-id)                     ▼
//!                     private clew_unwinder::Registry + DumpMemory (the dumped stack)
//!                                      │ Unwinder::frames from the dumped registers
//!                                      ▼
//!         frames ─► names: JIT from the dump's symbols; native from the ELF files
//!                   (clew-symbolizer, inlined frames, file:line) ─► text or JSON
//! ```
//!
//! The re-unwound backtrace is compared with the PCs the target walked itself (the
//! dump's `Backtrace` records). Damage in the dump is reported per problem (offset and
//! reason) after everything intact was decoded; the exit status is then 1. A file that
//! cannot be read is exit status 2.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::Args;
use clew_symbolizer::{ImageBytes as _, Language, Name, Symbolizer};
use clew_tracer::decode::{Decoded, Dump, DumpCause, DumpModule, StackSegment, TaskState};
use clew_tracer::event::EventId;
use clew_tracer::wire::{ModuleKind, TrapKind, arch};
use clew_unwinder::arch::x86_64::{Regs, X86_64};
use clew_unwinder::{Error as UnwindError, Memory, ModuleDesc, Registry, SymbolMap, Unwinder};
use object::{Object, ObjectSection};
use serde::Serialize;

use crate::run::short_name;

/// `clew decode [OPTIONS] DUMP`
#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// The dump file.
    pub dump: PathBuf,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Directories to look for the dumped native modules' ELF files in (by file name,
    /// else by build-id), before their paths in the dump. Repeatable.
    #[arg(long = "search", value_name = "DIR")]
    pub search: Vec<PathBuf>,
    /// How many of the last events to show (0: all).
    #[arg(long, default_value_t = 32)]
    pub events: usize,
}

/// The largest dump read (a dump is a few KiB to a few MiB).
const MAX_DUMP: u64 = 1 << 30;
/// The largest JIT module text accepted from a dump (its range goes into the registry).
const MAX_JIT_TEXT: u64 = 1 << 30;
/// The deepest re-unwind.
const MAX_DEPTH: usize = 1024;

/// Runs `clew decode`; returns the exit status.
pub fn run(args: &DecodeArgs, out: &mut dyn Write) -> i32 {
    let bytes = match read_dump(&args.dump) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("clew decode: {}: {e}", args.dump.display());
            return 2;
        }
    };
    let report = report(&args.dump, &bytes, &args.search, args.events);
    let r = if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        report.write_text(out)
    };
    if let Err(e) = r.and_then(|()| out.flush()) {
        eprintln!("clew decode: {e}");
        return 2;
    }
    if report.problems.is_empty() { 0 } else { 1 }
}

/// Decodes `bytes` (the dump read from `path`) and builds the report: ELF files are
/// looked for under `search` first; the last `events` events are kept (0: all).
pub fn report(path: &Path, bytes: &[u8], search: &[PathBuf], events: usize) -> Report {
    let decoded = clew_tracer::decode::decode(bytes);
    Report::build(path, bytes.len(), &decoded, search, events)
}

fn read_dump(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_DUMP).read_to_end(&mut bytes)?;
    Ok(bytes)
}

// ---- the report ----------------------------------------------------------------------

/// Everything `clew decode` says, for both renderings.
#[derive(Serialize)]
pub struct Report {
    pub file: String,
    pub size: usize,
    pub records: u32,
    pub header: Option<HeaderOut>,
    pub cause: Option<CauseOut>,
    /// Notes the writer put in the dump.
    pub notes: Vec<String>,
    /// The failing task's state, re-unwound.
    pub task: Option<TaskOut>,
    pub modules: Vec<ModuleOut>,
    /// Events in the dump (all rings).
    pub events_total: usize,
    /// The last ones, newest last.
    pub events: Vec<EventOut>,
    /// Damage in the dump: offset (in the file), length and reason.
    pub problems: Vec<ProblemOut>,
}

#[derive(Serialize)]
pub struct HeaderOut {
    pub producer: String,
    pub version: String,
    pub arch: String,
    pub pointer_width: u8,
    pub clock: String,
    pub clock_hz: u64,
    pub timestamp: u64,
    pub wall_ns: Option<u64>,
}

#[derive(Serialize)]
pub struct CauseOut {
    /// `panic`, `trap`, `breakpoint` or `requested`.
    pub kind: &'static str,
    /// One line: the panic message and location, the trap and PC, ...
    pub summary: String,
    pub task: u64,
    pub pc: Option<u64>,
    pub address: Option<u64>,
}

#[derive(Serialize)]
pub struct TaskOut {
    pub task: u64,
    /// DWARF order (x86_64: rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8–r15, rip).
    pub registers: Vec<RegisterOut>,
    /// The dumped stack: what the writer meant to copy and what arrived intact.
    pub stack_start: Option<u64>,
    pub stack_end: Option<u64>,
    pub stack_truncated: bool,
    pub stack_bytes_intact: usize,
    /// Whether the registers' PC is exact (a fault) rather than a return address.
    pub exact_pc: bool,
    /// The backtrace re-unwound on the host, innermost first.
    pub backtrace: Vec<FrameOut>,
    /// Why the re-unwind stopped.
    pub unwind_end: String,
    /// The PCs the target walked itself (the dump's backtrace), symbolized.
    pub live_backtrace: Vec<FrameOut>,
    /// Whether the re-unwind found exactly the live PCs.
    pub agrees: bool,
    pub agreement: String,
}

#[derive(Serialize)]
pub struct RegisterOut {
    pub name: &'static str,
    pub value: u64,
}

#[derive(Serialize, Clone)]
pub struct FrameOut {
    pub index: usize,
    pub pc: u64,
    /// `jit`, `native` or `unknown`.
    pub kind: &'static str,
    pub module: Option<String>,
    /// Innermost (inlined) first; empty when nothing names the address.
    pub functions: Vec<FunctionOut>,
}

#[derive(Serialize, Clone)]
pub struct FunctionOut {
    pub name: String,
    /// For JIT code: the offset into the function's symbol.
    pub offset: Option<u64>,
    /// For JIT code: the source (wasm bytecode) offset, when the dump carried the map.
    pub wasm_offset: Option<u32>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub inlined: bool,
}

#[derive(Serialize)]
pub struct ModuleOut {
    pub id: u64,
    pub kind: &'static str,
    pub name: String,
    pub text_start: u64,
    pub text_end: u64,
    pub build_id: Option<String>,
    pub eh_frame_addr: u64,
    pub eh_frame_len: u64,
    /// The `.eh_frame` came with the dump (and every chunk was intact).
    pub eh_frame_in_dump: bool,
    pub symbols: usize,
    pub symbols_written: u32,
    /// The ELF file used on this host, and its load bias.
    pub host_file: Option<String>,
    pub bias: Option<u64>,
    /// How the module's CFI and names were obtained, or why not.
    pub status: String,
}

#[derive(Serialize)]
pub struct EventOut {
    pub ring: u32,
    pub pos: u64,
    pub ts: u64,
    /// Time relative to the dump, in nanoseconds (when the clock's rate is known).
    pub rel_ns: Option<i64>,
    pub cpu: u32,
    pub task: u64,
    pub id: u16,
    pub name: String,
    pub args: Vec<u64>,
    pub detail: Option<String>,
}

#[derive(Serialize)]
pub struct ProblemOut {
    pub offset: usize,
    pub len: usize,
    pub reason: String,
}

impl Report {
    fn build(
        path: &Path,
        size: usize,
        decoded: &Decoded,
        search: &[PathBuf],
        events: usize,
    ) -> Report {
        let dump = &decoded.dump;
        let host = Host::build(dump, search);
        let task = dump
            .cause
            .as_ref()
            .map(DumpCause::task)
            .and_then(|t| dump.tasks.iter().find(|s| s.task == t))
            .or_else(|| dump.tasks.first())
            .map(|t| task_out(dump, t, &host));
        Report {
            file: path.display().to_string(),
            size,
            records: dump.records,
            header: dump.header.as_ref().map(|h| HeaderOut {
                producer: h.producer.clone(),
                version: format!("{}.{}", h.major, h.minor),
                arch: arch_name(h.arch).to_owned(),
                pointer_width: h.pointer_width,
                clock: format!("{:?}", h.clock.kind),
                clock_hz: clock_hz(dump),
                timestamp: h.timestamp,
                wall_ns: h.wall_ns,
            }),
            cause: dump.cause.as_ref().map(cause_out),
            notes: dump.notes.clone(),
            task,
            modules: host.modules,
            events_total: dump.events.len(),
            events: events_out(dump, events),
            problems: decoded
                .problems
                .iter()
                .map(|p| ProblemOut {
                    offset: p.offset,
                    len: p.len,
                    reason: p.reason.to_string(),
                })
                .collect(),
        }
    }

    /// The text rendering.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "clew decode: {} ({} bytes, {} intact records)",
            self.file, self.size, self.records
        )?;
        match &self.header {
            Some(h) => {
                let when = h.wall_ns.map(format_wall).unwrap_or_default();
                writeln!(
                    out,
                    "dump: written by {}, format {}, {} ({}-bit){}",
                    h.producer,
                    h.version,
                    h.arch,
                    u32::from(h.pointer_width) * 8,
                    when
                )?;
            }
            None => writeln!(out, "dump: no header")?,
        }
        match &self.cause {
            Some(c) => writeln!(out, "cause: {}", c.summary)?,
            None => writeln!(out, "cause: unknown (no cause record)")?,
        }
        for n in &self.notes {
            writeln!(out, "note in the dump: {}", n.replace('\n', "\n    "))?;
        }
        match &self.task {
            Some(t) => t.write_text(out)?,
            None => writeln!(out, "\nno task state in the dump")?,
        }
        writeln!(out, "\nmodules ({}):", self.modules.len())?;
        for m in &self.modules {
            writeln!(
                out,
                "  [{}] {:<6} {:#014x}-{:#014x}  {}",
                m.id, m.kind, m.text_start, m.text_end, m.name
            )?;
            let id = m
                .build_id
                .as_deref()
                .map(|b| format!("build-id {b}; "))
                .unwrap_or_default();
            writeln!(out, "         {id}{}", m.status)?;
        }
        writeln!(
            out,
            "\nevents (last {} of {}, newest last; times relative to the dump):",
            self.events.len(),
            self.events_total
        )?;
        for e in &self.events {
            let t = e
                .rel_ns
                .map(|ns| format!("{:>+14.3} µs", ns as f64 / 1000.0))
                .unwrap_or_else(|| format!("{:>14} ticks", e.ts));
            let args: Vec<String> = e.args.iter().map(|a| format!("{a:#x}")).collect();
            let detail = e
                .detail
                .as_deref()
                .map(|d| format!("  ({d})"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {t}  task {} cpu {}  {:<20} [{}]{detail}",
                e.task,
                e.cpu,
                e.name,
                args.join(", ")
            )?;
        }
        if !self.problems.is_empty() {
            writeln!(
                out,
                "\nproblems ({}): the dump is damaged or incomplete",
                self.problems.len()
            )?;
            for p in &self.problems {
                if p.len > 0 {
                    writeln!(
                        out,
                        "  note: offset {} (+{} bytes): {}",
                        p.offset, p.len, p.reason
                    )?;
                } else {
                    writeln!(out, "  note: offset {}: {}", p.offset, p.reason)?;
                }
            }
        }
        Ok(())
    }
}

impl TaskOut {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let stack = match (self.stack_start, self.stack_end) {
            (Some(s), Some(e)) => format!(
                "{} of {} stack bytes at {s:#x}{}",
                self.stack_bytes_intact,
                e.saturating_sub(s),
                if self.stack_truncated {
                    ", truncated"
                } else {
                    ""
                }
            ),
            _ => format!("{} stack bytes", self.stack_bytes_intact),
        };
        writeln!(
            out,
            "\nbacktrace of task {}, re-unwound on the host from the dumped registers and {stack} (innermost first):",
            self.task
        )?;
        write_frames(&self.backtrace, out)?;
        writeln!(out, "  ({})", self.unwind_end)?;
        writeln!(
            out,
            "live backtrace (the {} PCs the target walked): {}",
            self.live_backtrace.len(),
            self.agreement
        )?;
        if !self.agrees {
            write_frames(&self.live_backtrace, out)?;
        }
        writeln!(out, "registers:")?;
        for row in self.registers.chunks(4) {
            let cells: Vec<String> = row
                .iter()
                .map(|r| format!("{:>3} {:#018x}", r.name, r.value))
                .collect();
            writeln!(out, "  {}", cells.join("  "))?;
        }
        Ok(())
    }
}

/// The `clew run` layout: `#i pc kind module  function  at file:line`, one line per
/// inlined caller.
fn write_frames(frames: &[FrameOut], out: &mut dyn Write) -> std::io::Result<()> {
    for f in frames {
        let kind = match f.kind {
            "jit" => "JIT   ",
            "native" => "native",
            _ => "?     ",
        };
        let module = f.module.as_deref().unwrap_or("?");
        let i = f.index;
        let pc = f.pc;
        if f.functions.is_empty() {
            writeln!(out, "  #{i:<2} {pc:#014x}  {kind} {module}  ??")?;
        }
        for (k, func) in f.functions.iter().enumerate() {
            let prefix = if k == 0 {
                format!("#{i:<2} {pc:#014x}")
            } else {
                "   (inlined by)   ".to_owned()
            };
            let loc = match (&func.file, func.line, func.wasm_offset, func.offset) {
                (Some(file), Some(line), ..) => {
                    format!("  at {}:{line}", crate::report::short_path(file))
                }
                (Some(file), None, ..) => format!("  at {}", crate::report::short_path(file)),
                (None, _, Some(w), _) => format!("  at wasm offset {w:#x}"),
                (None, _, None, Some(off)) => format!("  +{off:#x}"),
                _ => String::new(),
            };
            writeln!(out, "  {prefix}  {kind} {module}  {}{loc}", func.name)?;
        }
    }
    Ok(())
}

fn arch_name(a: u16) -> &'static str {
    match a {
        arch::X86_64 => "x86_64",
        arch::AARCH64 => "aarch64",
        arch::RISCV => "riscv",
        _ => "unknown architecture",
    }
}

fn format_wall(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = secs / 86400;
    let (h, m, s) = (secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(", at {y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02} UTC")
}

fn signal_name(s: i32) -> String {
    match s {
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        libc::SIGABRT => "SIGABRT".into(),
        _ => format!("signal {s}"),
    }
}

fn trap_name(kind: TrapKind) -> String {
    match kind {
        TrapKind::Signal(s) => signal_name(s),
        k => k.name().to_owned(),
    }
}

fn cause_out(c: &DumpCause) -> CauseOut {
    match c {
        DumpCause::Panic {
            message,
            truncated,
            file,
            line,
            column,
            task,
        } => CauseOut {
            kind: "panic",
            summary: format!(
                "panic in task {task}: {message}{} at {file}:{line}:{column}",
                if *truncated { "…" } else { "" }
            ),
            task: *task,
            pc: None,
            address: None,
        },
        DumpCause::Trap {
            kind,
            pc,
            address,
            code,
            task,
        } => CauseOut {
            kind: "trap",
            summary: format!(
                "trap in task {task}: {} (code {code}) at pc {pc:#x}{}",
                trap_name(*kind),
                address
                    .map(|a| format!(", faulting address {a:#x}"))
                    .unwrap_or_default()
            ),
            task: *task,
            pc: Some(*pc),
            address: *address,
        },
        DumpCause::Breakpoint { pc, task } => CauseOut {
            kind: "breakpoint",
            summary: format!("breakpoint in task {task} at pc {pc:#x}"),
            task: *task,
            pc: Some(*pc),
            address: None,
        },
        DumpCause::Requested { reason, task } => CauseOut {
            kind: "requested",
            summary: format!("requested for task {task}: {reason}"),
            task: *task,
            pc: None,
            address: None,
        },
    }
}

// ---- the host's view of the dumped modules --------------------------------------------

/// The dumped modules rebuilt on the host: a private registry of their CFI at the
/// addresses they had in the target, and a symbolizer of the native ones' ELF files.
struct Host {
    /// Dropped first: it reads `_eh_frames`.
    registry: Registry,
    symbolizer: Symbolizer,
    /// The `.eh_frame` copies the registry reads.
    _eh_frames: Vec<Box<[u8]>>,
    modules: Vec<ModuleOut>,
    /// Dumped JIT modules by text range (index into the dump's modules).
    jit: Vec<(Range<u64>, usize)>,
    /// Native module names by text range, for frames no image covers.
    native: Vec<(Range<u64>, String)>,
}

impl Host {
    fn build(dump: &Dump, search: &[PathBuf]) -> Host {
        let mut host = Host {
            registry: Registry::new(),
            symbolizer: Symbolizer::new(),
            _eh_frames: Vec::new(),
            modules: Vec::new(),
            jit: Vec::new(),
            native: Vec::new(),
        };
        host.symbolizer.set_registry(None);
        for (i, m) in dump.modules.iter().enumerate() {
            let (status, file, bias) = if m.kind == ModuleKind::Jit {
                host.jit.push((m.text.clone(), i));
                (host.add_jit(m), None, None)
            } else {
                host.native.push((m.text.clone(), short_module(&m.name)));
                match host.add_native(m, search) {
                    Ok((path, bias, status)) => (status, Some(path), Some(bias)),
                    Err(why) => (why, None, None),
                }
            };
            host.modules.push(ModuleOut {
                id: m.id,
                kind: match m.kind {
                    ModuleKind::Jit => "JIT",
                    ModuleKind::Static => "native",
                    ModuleKind::LoadedObject => "loaded",
                },
                name: m.name.clone(),
                text_start: m.text.start,
                text_end: m.text.end,
                build_id: m.build_id.as_deref().map(hex),
                eh_frame_addr: m.eh_frame_addr,
                eh_frame_len: m.eh_frame_len,
                eh_frame_in_dump: m.eh_frame.is_some(),
                symbols: m.symbols.len(),
                symbols_written: m.symbols_written,
                host_file: file.map(|p| p.display().to_string()),
                bias,
                status,
            });
        }
        host
    }

    /// Registers `bytes` (a copy) as the CFI at `eh_frame_addr` covering `text`.
    fn register(
        &mut self,
        name: &str,
        kind: clew_unwinder::ModuleKind,
        text: Option<Range<u64>>,
        bytes: &[u8],
        eh_frame_addr: u64,
    ) -> Result<Range<usize>, String> {
        let copy: Box<[u8]> = bytes.into();
        // SAFETY: the copy is kept in `_eh_frames`, which outlives `registry` (dropped
        // first) and is never modified; a Box's heap bytes do not move with it.
        let eh: &'static [u8] = unsafe { std::slice::from_raw_parts(copy.as_ptr(), copy.len()) };
        self._eh_frames.push(copy);
        let desc = ModuleDesc {
            name,
            kind,
            text: text.map(|t| t.start as usize..t.end as usize),
            eh_frame: eh,
            eh_frame_hdr: None,
            lsda: None,
        };
        // SAFETY: as above: `eh` stays readable as long as the registry.
        let h = unsafe {
            self.registry
                .register_relocated(&desc, eh_frame_addr, SymbolMap::default())
        }
        .map_err(|e| format!("its CFI does not register: {e}"))?;
        let mut text = 0..0;
        self.registry.for_each_module(|m| {
            if m.id() == h.0 {
                text = m.text();
            }
        });
        Ok(text)
    }

    fn add_jit(&mut self, m: &DumpModule) -> String {
        if m.text.start >= m.text.end || m.text.end - m.text.start > MAX_JIT_TEXT {
            return format!(
                "JIT code with an implausible text range {:#x}-{:#x}: not used",
                m.text.start, m.text.end
            );
        }
        let Some(eh) = &m.eh_frame else {
            return "JIT code without its .eh_frame in the dump (lost or not written): frames in it end the re-unwind".into();
        };
        match self.register(
            &m.name,
            clew_unwinder::ModuleKind::Jit,
            Some(m.text.clone()),
            eh,
            m.eh_frame_addr,
        ) {
            Ok(_) => format!(
                "CFI: .eh_frame from the dump ({} bytes) at {:#x}; names: {} of {} symbols from the dump",
                eh.len(),
                m.eh_frame_addr,
                m.symbols.len(),
                m.symbols_written
            ),
            Err(e) => format!("JIT code: {e}"),
        }
    }

    /// Finds the module's ELF file, checks it, registers its `.eh_frame` at the dumped
    /// address and maps its image for symbols. Returns the file, the bias and a status.
    fn add_native(
        &mut self,
        m: &DumpModule,
        search: &[PathBuf],
    ) -> Result<(PathBuf, u64, String), String> {
        let mut why = Vec::new();
        for path in candidates(m, search) {
            match self.try_file(m, &path) {
                Ok((bias, status)) => return Ok((path, bias, status)),
                Err(e) => why.push(format!("{}: {e}", path.display())),
            }
        }
        if why.is_empty() && m.name.starts_with("linux-vdso") {
            return Err(
                "the kernel's vDSO: no file on disk (frames in it end the re-unwind)".into(),
            );
        }
        if why.is_empty() {
            why.push(format!(
                "no file {:?} here{}",
                m.name,
                if search.is_empty() {
                    " (try --search DIR)"
                } else {
                    " nor in the search directories"
                }
            ));
        }
        Err(format!(
            "not found on this host: {}; frames in it end the re-unwind",
            why.join("; ")
        ))
    }

    fn try_file(&mut self, m: &DumpModule, path: &Path) -> Result<(u64, String), String> {
        let file =
            clew_symbolizer::host::MappedFile::open(path, None).map_err(|e| e.to_string())?;
        let elf = object::File::parse(file.bytes()).map_err(|e| format!("not an ELF file: {e}"))?;
        let file_id = elf.build_id().ok().flatten();
        if let Some(want) = &m.build_id {
            match file_id {
                Some(have) if have == want.as_slice() => {}
                Some(have) => {
                    return Err(format!(
                        "build-id {} is not the dumped {}",
                        hex(have),
                        hex(want)
                    ));
                }
                None => return Err(format!("has no build-id (the dump says {})", hex(want))),
            }
        }
        let section = elf.section_by_name(".eh_frame").ok_or("has no .eh_frame")?;
        let data = section.data().map_err(|e| format!(".eh_frame: {e}"))?;
        let bias = m.eh_frame_addr.wrapping_sub(section.address());
        let text = self.register(
            &m.name,
            clew_unwinder::ModuleKind::Static,
            None,
            data,
            m.eh_frame_addr,
        )?;
        let image = clew_symbolizer::host::open_as(path, &m.name, &Default::default())
            .map_err(|e| e.to_string())?;
        self.symbolizer.add_image(image, bias);
        let same = text.start as u64 == m.text.start && text.end as u64 == m.text.end;
        Ok((
            bias,
            format!(
                "CFI and names: {} at bias {bias:#x}{}{}",
                path.display(),
                if m.build_id.is_some() {
                    " (build-id matches)"
                } else {
                    ""
                },
                if same {
                    String::new()
                } else {
                    format!(
                        "; its FDEs cover {:#x}-{:#x}, not the dumped text",
                        text.start, text.end
                    )
                }
            ),
        ))
    }

    /// Names the code at `lookup` (`pc` itself or `pc - 1` for return addresses).
    fn frame(&self, dump: &Dump, index: usize, pc: u64, lookup: u64) -> FrameOut {
        if let Some(&(_, i)) = self.jit.iter().find(|(r, _)| r.contains(&lookup)) {
            let m = &dump.modules[i];
            let functions = m
                .symbol(lookup)
                .map(|s| FunctionOut {
                    name: short_name(Name::new(&s.name, Language::Unknown).demangled()),
                    offset: Some(lookup - s.range.start),
                    wasm_offset: m.source_offset(lookup),
                    file: None,
                    line: None,
                    column: None,
                    inlined: false,
                })
                .into_iter()
                .collect();
            return FrameOut {
                index,
                pc,
                kind: "jit",
                module: Some(m.name.clone()),
                functions,
            };
        }
        let module = self
            .native
            .iter()
            .find(|(r, _)| r.contains(&lookup))
            .map(|(_, n)| n.clone());
        let functions = match self.symbolizer.symbolize(lookup) {
            Ok(s) => s
                .frames
                .iter()
                .map(|f| FunctionOut {
                    name: f
                        .function
                        .as_ref()
                        .map_or_else(|| "??".to_owned(), |n| short_name(n.demangled())),
                    offset: None,
                    wasm_offset: None,
                    file: f.file.as_deref().map(str::to_owned),
                    line: f.line,
                    column: f.column,
                    inlined: f.inlined,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        FrameOut {
            index,
            pc,
            kind: if module.is_some() {
                "native"
            } else {
                "unknown"
            },
            module,
            functions,
        }
    }
}

/// Where to look for a native module's file: the search directories by file name, the
/// dumped path, then the search directories by build-id.
fn candidates(m: &DumpModule, search: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let path = Path::new(&m.name);
    if let Some(base) = path.file_name() {
        for d in search {
            let p = d.join(base);
            if p.is_file() {
                out.push(p);
            }
        }
    }
    if path.is_absolute() && path.is_file() {
        out.push(path.to_owned());
    }
    if let Some(id) = &m.build_id
        && !search.is_empty()
    {
        out.extend(find_by_build_id(id, search));
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// ELF files under `dirs` (a bounded walk) whose build-id is `id`.
fn find_by_build_id(id: &[u8], dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo: Vec<(PathBuf, usize)> = dirs.iter().map(|d| (d.clone(), 0)).collect();
    let mut budget = 20_000usize;
    while let Some((dir, depth)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if budget == 0 {
                return found;
            }
            budget -= 1;
            let p = e.path();
            let Ok(ty) = e.file_type() else { continue };
            if ty.is_dir() && depth < 4 {
                todo.push((p, depth + 1));
            } else if ty.is_file()
                && let Ok(f) = clew_symbolizer::host::MappedFile::open(&p, None)
                && let Ok(elf) = object::File::parse(f.bytes())
                && elf.build_id().ok().flatten() == Some(id)
            {
                found.push(p);
            }
        }
    }
    found
}

fn short_module(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- re-unwinding ---------------------------------------------------------------------

/// The dumped stack segments as unwinder memory: reads outside them are errors.
struct DumpMemory<'a>(&'a [StackSegment]);

impl Memory for DumpMemory<'_> {
    fn read_u64(&self, addr: u64) -> Result<u64, UnwindError> {
        self.0
            .iter()
            .find_map(|s| s.memory().read_u64(addr).ok())
            .ok_or(UnwindError::BadAddress { addr })
    }

    fn read_sized(&self, addr: u64, size: u8) -> Result<u64, UnwindError> {
        self.0
            .iter()
            .find_map(|s| s.memory().read_sized(addr, size).ok())
            .ok_or(UnwindError::BadAddress { addr })
    }
}

const REG_NAMES: [&str; 17] = [
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip",
];

fn task_out(dump: &Dump, t: &TaskState, host: &Host) -> TaskOut {
    // A trap's or breakpoint's registers are the fault context: its PC is exact. Other
    // dumps capture registers in a call: the PC is a return address.
    let exact_pc = matches!(
        dump.cause,
        Some(DumpCause::Trap { .. } | DumpCause::Breakpoint { .. })
    );
    let lookup = |i: usize, pc: u64| {
        if exact_pc && i == 0 {
            pc
        } else {
            pc.saturating_sub(1)
        }
    };
    let live_backtrace: Vec<FrameOut> = t
        .backtrace
        .iter()
        .enumerate()
        .map(|(i, &pc)| host.frame(dump, i, pc, lookup(i, pc)))
        .collect();
    let mut out = TaskOut {
        task: t.task,
        registers: Vec::new(),
        stack_start: t.stack_info.map(|s| s.start),
        stack_end: t.stack_info.map(|s| s.end),
        stack_truncated: t.stack_info.is_some_and(|s| s.truncated),
        stack_bytes_intact: t.stack.iter().map(|s| s.bytes.len()).sum(),
        exact_pc,
        backtrace: Vec::new(),
        unwind_end: String::new(),
        live_backtrace,
        agrees: false,
        agreement: String::new(),
    };
    let regs = match &t.registers {
        None => {
            out.unwind_end = "no registers in the dump: nothing to re-unwind".into();
            out.agreement = "cannot compare (no re-unwind)".into();
            return out;
        }
        Some((a, _)) if *a != arch::X86_64 => {
            out.unwind_end = format!(
                "registers of {}: this decoder re-unwinds x86_64 only",
                arch_name(*a)
            );
            out.agreement = "cannot compare (no re-unwind)".into();
            return out;
        }
        Some((_, r)) if r.len() < 17 => {
            out.unwind_end = format!("only {} registers in the dump (17 needed)", r.len());
            out.agreement = "cannot compare (no re-unwind)".into();
            return out;
        }
        Some((_, r)) => {
            let mut regs = Regs::default();
            regs.gpr.copy_from_slice(&r[..17]);
            regs
        }
    };
    out.registers = REG_NAMES
        .iter()
        .zip(regs.gpr)
        .map(|(&name, value)| RegisterOut { name, value })
        .collect();
    let mem = DumpMemory(&t.stack);
    let live = &t.backtrace;
    // CFI only first. A target that walks frames without CFI through the frame pointer
    // (a no_std kernel's precompiled libcore: `set_frame_pointer_fallback`) has live PCs
    // past such frames; then the frame-pointer rule is what reproduces its walk.
    let mut walk = reunwind(host, dump, &regs, exact_pc, &mem, false);
    let mut fallback = false;
    if compare(&walk.pcs, live).0 != Agreement::Same {
        let with_fp = reunwind(host, dump, &regs, exact_pc, &mem, true);
        if compare(&with_fp.pcs, live).0 == Agreement::Same {
            walk = with_fp;
            fallback = true;
        }
    }
    out.backtrace = walk.frames;
    out.unwind_end = walk.end;
    let (agreement_kind, mut agreement) = compare(&walk.pcs, live);
    if fallback {
        agreement.push_str(
            "; frames without CFI were stepped through the frame pointer, as the target's walker did",
        );
    }
    let agrees = agreement_kind == Agreement::Same;
    out.agrees = agrees;
    out.agreement = agreement;
    out
}

/// One re-unwind on the host: frames, their PCs, and why the walk ended.
struct Walk {
    frames: Vec<FrameOut>,
    pcs: Vec<u64>,
    end: String,
}

fn reunwind(
    host: &Host,
    dump: &Dump,
    regs: &Regs,
    exact_pc: bool,
    mem: &DumpMemory<'_>,
    frame_pointer_fallback: bool,
) -> Walk {
    let unwinder = Unwinder::<X86_64>::new(&host.registry)
        .with_max_depth(MAX_DEPTH)
        .with_frame_pointer_fallback(frame_pointer_fallback);
    let mut walk = Walk {
        frames: Vec::new(),
        pcs: Vec::new(),
        end: String::new(),
    };
    let mut end = None;
    for (i, f) in unwinder.frames(*regs, exact_pc, mem, None).enumerate() {
        match f {
            Ok(f) => {
                walk.pcs.push(f.pc);
                walk.frames.push(host.frame(dump, i, f.pc, f.lookup_pc()));
                if f.kind == clew_unwinder::FrameKind::Unknown {
                    end = Some(format!(
                        "walk ended at {:#x}: no CFI covers it (its module's file was not found, or it is not code)",
                        f.pc
                    ));
                }
            }
            Err(UnwindError::BadAddress { addr }) => {
                end = Some(format!(
                    "walk ended: stack address {addr:#x} is not in the dumped stack"
                ));
                break;
            }
            Err(e) => {
                end = Some(format!("walk ended: {e}"));
                break;
            }
        }
    }
    walk.end = end.unwrap_or_else(|| "walk ended at the outermost frame".into());
    walk
}

#[derive(Debug, PartialEq, Eq)]
enum Agreement {
    Same,
    Differs,
}

/// Compares the host's re-unwound PCs with the target's live ones. The live walk may
/// have started a few frames deeper than the dumped registers (a dump writer that walks
/// from inside its capture helper): then the re-unwind's frame 0 is a different PC of
/// the live frame `k` (k ≤ 3), and everything from its caller on must be equal.
fn compare(pcs: &[u64], live: &[u64]) -> (Agreement, String) {
    if live.is_empty() {
        return (
            Agreement::Differs,
            "no live backtrace in the dump to compare with".to_owned(),
        );
    }
    if pcs == live {
        return (
            Agreement::Same,
            format!("the re-unwind agrees ({} frames, same PCs)", pcs.len()),
        );
    }
    if pcs.len() > 1 {
        for k in 1..=3.min(live.len().saturating_sub(1)) {
            if pcs[1..] == live[k + 1..] {
                return (
                    Agreement::Same,
                    format!(
                        "the re-unwind agrees ({} frames, same PCs from the registers' caller on; \
                         the live walk started {k} frame(s) deeper, in the dump writer's capture)",
                        pcs.len()
                    ),
                );
            }
        }
    }
    let same = pcs.iter().zip(live).take_while(|(a, b)| a == b).count();
    (
        Agreement::Differs,
        format!(
            "the re-unwind DIFFERS: {same} leading PCs agree; {} re-unwound vs {} live frames{}",
            pcs.len(),
            live.len(),
            match (pcs.get(same), live.get(same)) {
                (Some(a), Some(b)) => format!("; #{same}: {a:#x} vs {b:#x}"),
                _ => String::new(),
            }
        ),
    )
}

// ---- events ---------------------------------------------------------------------------

fn clock_hz(dump: &Dump) -> u64 {
    use clew_tracer::clock::ClockKind;
    dump.header.as_ref().map_or(0, |h| match h.clock.kind {
        ClockKind::Nanoseconds => 1_000_000_000,
        _ => h.clock.hz,
    })
}

fn events_out(dump: &Dump, last: usize) -> Vec<EventOut> {
    let hz = clock_hz(dump);
    let now = dump.header.as_ref().map(|h| h.timestamp);
    let names: BTreeMap<u64, &str> = dump
        .modules
        .iter()
        .map(|m| {
            (
                clew_tracer::event::name_hash(m.name.as_bytes()),
                m.name.as_str(),
            )
        })
        .collect();
    let skip = if last == 0 {
        0
    } else {
        dump.events.len().saturating_sub(last)
    };
    dump.events[skip..]
        .iter()
        .map(|d| {
            let e = &d.event;
            let rel_ns = now.filter(|_| hz > 0).map(|now| {
                let ticks = e.ts.wrapping_sub(now) as i64 as i128;
                (ticks * 1_000_000_000 / i128::from(hz)) as i64
            });
            let args = e.args().to_vec();
            let (name, detail) = event_name(e.id, &args, &names);
            EventOut {
                ring: d.ring,
                pos: d.pos,
                ts: e.ts,
                rel_ns,
                cpu: e.cpu,
                task: e.task,
                id: e.id.0,
                name,
                args,
                detail,
            }
        })
        .collect()
}

fn event_name(id: EventId, args: &[u64], names: &BTreeMap<u64, &str>) -> (String, Option<String>) {
    if let Some(n) = id.as_user() {
        return (format!("user {n}"), None);
    }
    let name = id
        .builtin_name()
        .map_or_else(|| format!("event {:#x}", id.0), str::to_owned);
    let detail = match id {
        EventId::MODULE_REGISTERED | EventId::MODULE_DEREGISTERED if args.len() >= 4 => {
            Some(format!(
                "module {} {}, text {:#x}-{:#x}",
                args[0],
                names.get(&args[3]).map_or("(name not in the dump)", |n| n),
                args[1],
                args[2]
            ))
        }
        EventId::TRAP if !args.is_empty() => {
            let what = match args[0] {
                c if c >= 0x1000 => signal_name((c - 0x1000) as i32),
                c => TrapKind::Exception(c as u8).name().to_owned(),
            };
            Some(format!(
                "{what} at pc {:#x}",
                args.get(1).copied().unwrap_or(0)
            ))
        }
        EventId::PANIC if args.len() >= 3 => Some(format!("line {}, column {}", args[1], args[2])),
        _ => None,
    };
    (name, detail)
}
