//! `clew symbolize`: addr2line-compatible symbolization on `clew-symbolizer`.
//!
//! `clew symbolize -e FILE [-a] [-f] [-i] [-C] [-p] [-s] [ADDR…]` prints what binutils
//! `addr2line` prints for the same flags (so scripts that parse it keep working), with
//! llvm-symbolizer's answers where the two disagree; `--json` prints one JSON object
//! per address instead. Addresses come from the command line, else from stdin, one per
//! line: what is available is answered as a batch (in parallel, in address order),
//! then flushed, so a pipe that sends one address and waits gets its answer.
//! `--pid PID` takes runtime addresses of a running process (`/proc/PID/maps`).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use clew_symbolizer::host::{self, ProcessMaps};
use clew_symbolizer::{ElfImage, Error, Frame, Symbolized, Symbolizer};

use crate::progress::Progress;

/// The flags of `clew symbolize`.
#[derive(Args, Debug, Clone, Default)]
pub struct SymbolizeArgs {
    /// The executable or library whose addresses are given (its own virtual addresses).
    #[arg(
        short = 'e',
        long = "exe",
        value_name = "FILE",
        default_value = "a.out"
    )]
    pub exe: PathBuf,
    /// Print each address before its symbolization.
    #[arg(short = 'a', long = "addresses")]
    pub addresses: bool,
    /// Print function names as well as file:line.
    #[arg(short = 'f', long = "functions")]
    pub functions: bool,
    /// Print the callers of inlined functions too (innermost first).
    #[arg(short = 'i', long = "inlines")]
    pub inlines: bool,
    /// Demangle function names (Rust legacy and v0, C++).
    #[arg(short = 'C', long = "demangle")]
    pub demangle: bool,
    /// One line per address: "func at file:line (inlined by) ...".
    #[arg(short = 'p', long = "pretty-print")]
    pub pretty: bool,
    /// Print only the base name of each file.
    #[arg(short = 's', long = "basenames")]
    pub basenames: bool,
    /// Print one JSON object per address (all frames, raw and demangled names).
    #[arg(long)]
    pub json: bool,
    /// Symbolize runtime addresses of this running process (through /proc/PID/maps).
    #[arg(long, value_name = "PID", conflicts_with = "exe")]
    pub pid: Option<u32>,
    /// Threads for batches (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Memory budget of the parsed debug information, in MiB (least recently used
    /// units are dropped past it).
    #[arg(long, value_name = "MIB")]
    pub budget: Option<usize>,
    /// Addresses (hexadecimal, with or without 0x); read from stdin when none.
    #[arg(value_name = "ADDR")]
    pub addrs: Vec<String>,
}

/// Where addresses resolve.
enum Target {
    Image(Arc<ElfImage>),
    Process(Symbolizer),
}

impl Target {
    fn symbolize(&self, addr: u64) -> Result<Symbolized, Error> {
        match self {
            Target::Image(image) => image.symbolize_full(addr),
            Target::Process(s) => s.symbolize(addr),
        }
    }
}

/// Lines of addresses, and whether more are waiting (without blocking).
pub struct Input<R: Read> {
    reader: BufReader<R>,
    /// The descriptor to poll for pending input (`None`: assume more is pending).
    fd: Option<i32>,
}

impl<R: Read> Input<R> {
    pub fn new(reader: R, fd: Option<i32>) -> Self {
        Input {
            reader: BufReader::with_capacity(1 << 16, reader),
            fd,
        }
    }

    /// Whether a line can be read right now without waiting.
    fn pending(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        let Some(fd) = self.fd else {
            return true;
        };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents != 0
    }
}

/// The process's stdin.
pub fn stdin() -> Input<std::io::Stdin> {
    Input::new(std::io::stdin(), Some(0))
}

/// Runs `clew symbolize`, writing to `out` and reading addresses from `input` when none
/// are given.
pub fn run<R: Read>(args: &SymbolizeArgs, input: &mut Input<R>, out: &mut dyn Write) -> Result<()> {
    let target = match args.pid {
        Some(pid) => {
            let s = Symbolizer::new();
            // JIT modules live in that process's registry, not ours.
            s.set_registry(None);
            s.set_loader(Box::new(
                ProcessMaps::new(pid).with_context(|| format!("reading the maps of {pid}"))?,
            ));
            Target::Process(s)
        }
        None => {
            if !args.exe.exists() {
                bail!("'{}': No such file", args.exe.display());
            }
            Target::Image(
                host::open(&args.exe).with_context(|| format!("loading {}", args.exe.display()))?,
            )
        }
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    if !args.addrs.is_empty() {
        let batch: Vec<&str> = args.addrs.iter().map(String::as_str).collect();
        answer(args, &target, &batch, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let eof = input.reader.read_line(&mut line)? == 0;
        if !eof {
            lines.push(line.trim().to_owned());
        }
        // Answer what has arrived once no more input is waiting (or at the end).
        if !lines.is_empty() && (eof || lines.len() >= 65536 || !input.pending()) {
            let batch: Vec<&str> = lines.iter().map(String::as_str).collect();
            answer(args, &target, &batch, &mut out)?;
            out.flush()?;
            lines.clear();
        }
        if eof {
            return Ok(());
        }
    }
}

fn parse_addr(s: &str) -> Option<u64> {
    let s = s.trim();
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(hex, 16).ok()
}

fn answer(
    args: &SymbolizeArgs,
    target: &Target,
    batch: &[&str],
    out: &mut dyn Write,
) -> Result<()> {
    let addrs: Vec<Option<u64>> = batch.iter().map(|s| parse_addr(s)).collect();
    let valid: Vec<u64> = addrs.iter().flatten().copied().collect();
    // The first lookups of a big file parse its DWARF unit index and units: a bar on a
    // terminal when that takes more than a second.
    let progress = Progress::bar(
        valid.len() as u64,
        match args.pid {
            Some(pid) => format!("symbolizing in process {pid}"),
            None => format!("symbolizing in {}", args.exe.display()),
        },
    );
    let results = host::parallel::map(&valid, args.threads, |a| {
        let r = target.symbolize(a);
        progress.inc(1);
        r
    });
    drop(progress);
    let mut results = results.into_iter();
    for (text, addr) in batch.iter().zip(&addrs) {
        let result = addr.map(|_| results.next().expect("one result per valid address"));
        if args.json {
            writeln!(out, "{}", json(text, *addr, result.as_ref()))?;
        } else {
            print_addr2line(args, addr.unwrap_or(0), result.as_ref(), out)?;
        }
    }
    Ok(())
}

/// binutils addr2line's layout.
fn print_addr2line(
    args: &SymbolizeArgs,
    addr: u64,
    result: Option<&Result<Symbolized, Error>>,
    out: &mut dyn Write,
) -> Result<()> {
    if args.addresses {
        write!(out, "0x{addr:016x}")?;
        out.write_all(if args.pretty { b": " } else { b"\n" })?;
    }
    let frames: &[Frame] = match result {
        Some(Ok(s)) => &s.frames,
        _ => &[],
    };
    if frames.is_empty() {
        if args.functions {
            out.write_all(if args.pretty { b"?? " } else { b"??\n" })?;
        }
        out.write_all(b"??:0\n")?;
        return Ok(());
    }
    let shown = if args.inlines { frames } else { &frames[..1] };
    for (i, f) in shown.iter().enumerate() {
        if args.pretty && i > 0 {
            out.write_all(b" (inlined by) ")?;
        }
        if args.functions {
            let name = match &f.function {
                Some(n) if args.demangle => n.demangled(),
                Some(n) => n.raw(),
                None => "??",
            };
            out.write_all(name.as_bytes())?;
            out.write_all(if args.pretty { b" at " } else { b"\n" })?;
        }
        let file = match &f.file {
            Some(p) if args.basenames => p.rsplit('/').next().unwrap_or(p),
            Some(p) => p,
            None => "??",
        };
        write!(out, "{file}:")?;
        match f.line {
            Some(l) => write!(out, "{l}")?,
            None => out.write_all(b"?")?,
        }
        if let Some(d) = f.discriminator {
            write!(out, " (discriminator {d})")?;
        }
        if let Some(off) = f.source_offset {
            write!(out, " (wasm offset {off:#x})")?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn json(text: &str, addr: Option<u64>, result: Option<&Result<Symbolized, Error>>) -> String {
    use serde_json::{Value, json};
    let Some(addr) = addr else {
        return json!({ "input": text, "error": "not a hexadecimal address" }).to_string();
    };
    let mut v = json!({ "address": format!("{addr:#x}") });
    match result {
        Some(Ok(s)) => {
            if let Some(m) = &s.module {
                v["module"] = json!({
                    "name": &*m.name,
                    "kind": format!("{:?}", m.kind).to_lowercase(),
                    "address": format!("{:#x}", m.relative),
                });
            }
            let frames: Vec<Value> = s
                .frames
                .iter()
                .map(|f| {
                    json!({
                        "function": f.function.as_ref().map(|n| n.demangled()),
                        "function_raw": f.function.as_ref().map(|n| n.raw()),
                        "file": f.file.as_deref(),
                        "line": f.line,
                        "column": f.column,
                        "discriminator": f.discriminator,
                        "inlined": f.inlined,
                        "source_offset": f.source_offset,
                    })
                })
                .collect();
            v["frames"] = Value::Array(frames);
        }
        Some(Err(e)) => v["error"] = Value::String(e.to_string()),
        None => {}
    }
    v.to_string()
}
