//! What `clew run` tells its user: backtraces, results, trap and panic reports and
//! errors, as text for a person (coloured on a terminal) or as JSON lines for a script.
//!
//! With `--json`, stdout is a stream of JSON objects, one per line, each with an `event`
//! field, written as things happen (a backtrace printed by the module comes out when
//! the module asks for it, and a run that dies still leaves its earlier lines):
//!
//! | event | fields |
//! |---|---|
//! | `backtrace` | `source` (`clew.backtrace` or `clew.breakpoint`), `frames` |
//! | `result` | `function`, `results` (`[{type, value}]`; non-finite floats as strings) |
//! | `trap` | `function`, `cause`, `frames` |
//! | `panic` | `function`, `message`, `frames` (captured at the panic point) |
//! | `error` | `message`, `status` (a bad module or invocation) |
//! | `exit` | `status`: always the last line |
//!
//! A frame is `{index, pc, kind, module, path, function, function_raw, file, line,
//! column, wasm_offset, inlined_callers}`: `kind` is `jit`, `native` or `unknown`; `pc`
//! a hex string (`null` for the frames of a trap's wasm backtrace); `function`, `file`
//! and `line` those of the innermost inlined function at the PC, and `inlined_callers`
//! the functions it was inlined into, innermost first, each with the file and line of
//! the call. Unknown values are `null`.
//!
//! JIT frames of a wasm module that carries DWARF get their file and line from it
//! ([`crate::wasm_dwarf`]), native frames from the clew binary's own debug info.

use std::io::{IsTerminal as _, Write};
use std::sync::Arc;

use anstyle::{AnsiColor, Style};
use clew_symbolizer::{Frame, ModuleKind, Symbolized, Symbolizer};
use serde_json::{Value, json};

use crate::wasm_dwarf::WasmDwarf;

/// `--color`: when to colour text output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour stdout.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }
}

/// How reports are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text { color: bool },
    Json,
}

/// Renders a run's events; cheap to clone into host functions.
#[derive(Clone, Debug)]
pub struct Reporter {
    format: Format,
    /// The run's module's DWARF, with the start of its registered text.
    dwarf: Option<(u64, Arc<WasmDwarf>)>,
}

/// What kind of code a PC is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jit,
    Native,
    Unknown,
}

impl Kind {
    fn json(self) -> &'static str {
        match self {
            Kind::Jit => "jit",
            Kind::Native => "native",
            Kind::Unknown => "unknown",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Kind::Jit => "JIT   ",
            Kind::Native => "native",
            Kind::Unknown => "?     ",
        }
    }
}

/// One PC of a backtrace, symbolized.
#[derive(Clone, Debug)]
pub struct ReportFrame {
    /// `None` for frames known only by their wasm position (a trap's wasm backtrace).
    pub pc: Option<u64>,
    pub kind: Kind,
    /// The module's short name (the executable's or library's file name, the JIT
    /// module's name).
    pub module: String,
    /// The image's path for native modules.
    pub path: Option<String>,
    /// Innermost inlined function first (as [`Symbolized::frames`]); empty if unknown.
    pub frames: Vec<Frame>,
    /// Why the PC could not be symbolized.
    pub error: Option<String>,
}

impl ReportFrame {
    /// The same code location (for folding recursion).
    fn same_as(&self, other: &ReportFrame) -> bool {
        self.pc == other.pc
            && self.kind == other.kind
            && self.module == other.module
            && self.frames == other.frames
            && self.error == other.error
    }
}

impl Reporter {
    pub fn new(format: Format) -> Reporter {
        Reporter {
            format,
            dwarf: None,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Uses `dwarf` for the JIT frames of the module whose text starts at `text_start`.
    pub fn with_dwarf(mut self, text_start: usize, dwarf: Option<Arc<WasmDwarf>>) -> Reporter {
        self.dwarf = dwarf.map(|d| (text_start as u64, d));
        self
    }

    /// Symbolizes return addresses (looked up at `pc - 1`, the call).
    pub fn frames(&self, pcs: &[usize], sym: &Symbolizer) -> Vec<ReportFrame> {
        self.frames_from(pcs, false, sym)
    }

    /// Symbolizes a backtrace walked from a fault context: the first PC is the faulting
    /// instruction's own (looked up as is), the others are return addresses.
    pub fn frames_at_fault(&self, pcs: &[usize], sym: &Symbolizer) -> Vec<ReportFrame> {
        self.frames_from(pcs, true, sym)
    }

    fn frames_from(&self, pcs: &[usize], exact_first: bool, sym: &Symbolizer) -> Vec<ReportFrame> {
        pcs.iter()
            .enumerate()
            .map(|(i, &pc)| {
                let exact = exact_first && i == 0;
                let lookup = (pc as u64).saturating_sub(u64::from(!exact));
                match sym.symbolize(lookup) {
                    Ok(s) => self.frame(Some(pc as u64), s),
                    Err(e) => ReportFrame {
                        pc: Some(pc as u64),
                        kind: Kind::Unknown,
                        module: "?".to_owned(),
                        path: None,
                        frames: Vec::new(),
                        error: Some(e.to_string()),
                    },
                }
            })
            .collect()
    }

    fn frame(&self, pc: Option<u64>, s: Symbolized) -> ReportFrame {
        let (kind, module, path) = match &s.module {
            Some(m) if m.kind == ModuleKind::Jit => (Kind::Jit, m.name.to_string(), None),
            Some(m) => {
                let path = if &*m.name == "/proc/self/exe" {
                    std::env::current_exe()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| m.name.to_string())
                } else {
                    m.name.to_string()
                };
                let short = path.rsplit('/').next().unwrap_or(&path).to_owned();
                (Kind::Native, short, Some(path))
            }
            None => (Kind::Unknown, "?".to_owned(), None),
        };
        let mut frames = s.frames;
        // A JIT frame of the module with DWARF: its source frames replace the symbol
        // map's single named frame (keeping that name if DWARF has none).
        if let (Kind::Jit, Some((start, dwarf)), Some(m)) = (kind, &self.dwarf, &s.module)
            && s.address - m.relative == *start
            && let Some(offset) = frames.first().and_then(|f| f.source_offset)
        {
            let mut from_dwarf = dwarf.frames(offset);
            if let Some(last) = from_dwarf.last_mut()
                && last.function.is_none()
            {
                last.function = frames.last().and_then(|f| f.function.clone());
            }
            if !from_dwarf.is_empty() {
                frames = from_dwarf;
            }
        }
        ReportFrame {
            pc,
            kind,
            module,
            path,
            frames,
            error: None,
        }
    }

    /// The frames of a trap's wasm backtrace (no PCs: Wasmtime's own record of the
    /// wasm frames at the fault), named from the module and its DWARF.
    pub fn wasm_frames(&self, bt: &wasmtime::WasmBacktrace) -> Vec<ReportFrame> {
        bt.frames()
            .iter()
            .map(|f| {
                let name = f.func_name().map_or_else(
                    || format!("wasm-function[{}]", f.func_index()),
                    str::to_owned,
                );
                let symbol = Frame {
                    function: Some(clew_symbolizer::Name::new(
                        &name,
                        clew_symbolizer::Language::Unknown,
                    )),
                    source_offset: f.module_offset().and_then(|o| u32::try_from(o).ok()),
                    ..Frame::default()
                };
                let mut frames = vec![symbol];
                if let (Some((_, dwarf)), Some(offset)) = (&self.dwarf, frames[0].source_offset) {
                    let mut from_dwarf = dwarf.frames(offset);
                    if let Some(last) = from_dwarf.last_mut()
                        && last.function.is_none()
                    {
                        last.function = frames[0].function.clone();
                    }
                    if !from_dwarf.is_empty() {
                        frames = from_dwarf;
                    }
                }
                ReportFrame {
                    pc: None,
                    kind: Kind::Jit,
                    module: f.module().name().unwrap_or("wasm module").to_owned(),
                    path: None,
                    frames,
                    error: None,
                }
            })
            .collect()
    }

    /// A backtrace the module asked for (`source`: `clew.backtrace`, `clew.breakpoint`).
    pub fn backtrace(&self, source: &str, frames: &[ReportFrame], out: &mut dyn Write) {
        match self.format {
            Format::Json => line(
                out,
                json!({ "event": "backtrace", "source": source, "frames": json_frames(frames) }),
            ),
            Format::Text { color } => print_frames(frames, color, out),
        }
    }

    /// A breakpoint with no debugger attached: says so, then the stack.
    pub fn breakpoint(&self, frames: &[ReportFrame], out: &mut dyn Write) {
        if let Format::Text { .. } = self.format {
            let _ = writeln!(
                out,
                "clew.breakpoint: no debugger attached; the stack here:"
            );
        }
        self.backtrace("clew.breakpoint", frames, out);
    }

    /// The called function's results.
    pub fn results(&self, function: &str, values: &[wasmtime::Val], out: &mut dyn Write) {
        match self.format {
            Format::Json => {
                let results: Vec<Value> = values.iter().map(json_val).collect();
                line(
                    out,
                    json!({ "event": "result", "function": function, "results": results }),
                );
            }
            Format::Text { .. } => {
                let shown: Vec<String> = values.iter().map(show_val).collect();
                if !shown.is_empty() {
                    let _ = writeln!(out, "{}", shown.join(" "));
                }
            }
        }
    }

    /// A trap: its cause, and the frames at the fault.
    pub fn trap(&self, function: &str, cause: &str, frames: &[ReportFrame], out: &mut dyn Write) {
        match self.format {
            Format::Json => line(
                out,
                json!({
                    "event": "trap", "function": function, "cause": cause,
                    "frames": json_frames(frames),
                }),
            ),
            Format::Text { color } => {
                let _ = writeln!(out, "{}", paint(color, ERROR, cause));
                if !frames.is_empty() {
                    let _ = writeln!(out, "wasm frames at the fault (innermost first):");
                    print_frames(frames, color, out);
                    if frames.len() == crate::run::WASM_BACKTRACE_MAX_FRAMES {
                        let _ = writeln!(out, "  (outer frames not recorded)");
                    }
                }
            }
        }
    }

    /// A host panic, with the frames captured at the panic point if any.
    pub fn panic(
        &self,
        function: &str,
        message: &str,
        frames: Option<&[ReportFrame]>,
        out: &mut dyn Write,
    ) {
        match self.format {
            Format::Json => line(
                out,
                json!({
                    "event": "panic", "function": function, "message": message,
                    "frames": frames.map(json_frames),
                }),
            ),
            Format::Text { color } => {
                let _ = writeln!(out, "{}", paint(color, ERROR, &format!("panic: {message}")));
                if let Some(frames) = frames {
                    let _ = writeln!(out, "backtrace at the panic point (innermost first):");
                    print_frames(frames, color, out);
                }
            }
        }
    }

    /// Explanatory prose (the demo's story): text output only.
    pub fn note(&self, text: &str, out: &mut dyn Write) {
        if let Format::Text { .. } = self.format {
            let _ = writeln!(out, "{text}");
        }
    }

    /// A bad module or invocation (the one-line message also goes to stderr).
    pub fn error(&self, message: &str, status: i32, out: &mut dyn Write) {
        if self.is_json() {
            line(
                out,
                json!({ "event": "error", "message": message, "status": status }),
            );
        }
    }

    /// The end of the run: JSON output's last line.
    pub fn exit(&self, status: i32, out: &mut dyn Write) {
        if self.is_json() {
            line(out, json!({ "event": "exit", "status": status }));
        }
    }
}

fn line(out: &mut dyn Write, v: Value) {
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

const JIT: Style = AnsiColor::Magenta.on_default().bold();
const NATIVE: Style = AnsiColor::Blue.on_default();
const FUNCTION: Style = Style::new().bold();
const LOCATION: Style = AnsiColor::Green.on_default();
const ERROR: Style = AnsiColor::Red.on_default().bold();

fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{}{text}{}", style.render(), style.render_reset())
    } else {
        text.to_owned()
    }
}

/// One line per frame and one per inlined caller: index, PC (or the wasm offset column
/// of a trap's frames), kind, module, function, source location.
/// A run of four or more identical frames (deep recursion, a stack overflow) prints its
/// first frame and one line saying how many more follow.
pub fn print_frames(frames: &[ReportFrame], color: bool, out: &mut dyn Write) {
    let mut i = 0;
    while i < frames.len() {
        let run = frames[i..]
            .iter()
            .take_while(|g| g.same_as(&frames[i]))
            .count();
        print_frame(i, &frames[i], color, out);
        if run >= 4 {
            let _ = writeln!(
                out,
                "  … #{}–#{}: {} more of the same frame",
                i + 1,
                i + run - 1,
                run - 1
            );
            i += run;
        } else {
            i += 1;
        }
    }
}

fn print_frame(i: usize, f: &ReportFrame, color: bool, out: &mut dyn Write) {
    {
        let kind_style = if f.kind == Kind::Jit { JIT } else { NATIVE };
        let kind = paint(color, kind_style, f.kind.text());
        let head = match f.pc {
            Some(pc) => format!("#{i:<2} {pc:#014x}"),
            None => format!("#{i:<2}"),
        };
        if let Some(e) = &f.error {
            let _ = writeln!(out, "  {head}  ?  ({e})");
            return;
        }
        if f.frames.is_empty() {
            let _ = writeln!(out, "  {head}  {kind} {}  ??", f.module);
        }
        for (k, fr) in f.frames.iter().enumerate() {
            let mut name = fr
                .function
                .as_ref()
                .map(|n| short_name(n.demangled()))
                .unwrap_or_else(|| "??".to_owned());
            if f.pc.is_none() {
                name = format!("wasm function {name}");
            }
            let loc = match (&fr.file, fr.line, fr.source_offset) {
                (Some(file), Some(line), _) => format!("{}:{line}", short_path(file)),
                (Some(file), None, _) => short_path(file).to_owned(),
                (None, _, Some(off)) => format!("wasm offset {off:#x}"),
                _ => String::new(),
            };
            let loc = if loc.is_empty() {
                loc
            } else {
                format!("  at {}", paint(color, LOCATION, &loc))
            };
            let prefix = if k == 0 {
                head.clone()
            } else if f.pc.is_some() {
                "   (inlined by)   ".to_owned()
            } else {
                "   (inlined by)".to_owned()
            };
            let name = paint(color, FUNCTION, &name);
            let _ = writeln!(out, "  {prefix}  {kind} {}  {name}{loc}", f.module);
        }
    }
}

fn json_frames(frames: &[ReportFrame]) -> Value {
    Value::Array(
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let inner = f.frames.first();
                let mut v = json!({
                    "index": i,
                    "pc": f.pc.map(|pc| format!("{pc:#x}")),
                    "kind": f.kind.json(),
                    "module": f.module,
                    "path": f.path,
                    "function": inner.and_then(|fr| fr.function.as_ref()).map(|n| n.demangled()),
                    "function_raw": inner.and_then(|fr| fr.function.as_ref()).map(|n| n.raw()),
                    "file": inner.and_then(|fr| fr.file.as_deref()),
                    "line": inner.and_then(|fr| fr.line),
                    "column": inner.and_then(|fr| fr.column),
                    "wasm_offset": f.frames.iter().find_map(|fr| fr.source_offset),
                    "inlined_callers": f.frames.iter().skip(1).map(|fr| json!({
                        "function": fr.function.as_ref().map(|n| n.demangled()),
                        "function_raw": fr.function.as_ref().map(|n| n.raw()),
                        "file": fr.file.as_deref(),
                        "line": fr.line,
                        "column": fr.column,
                    })).collect::<Vec<_>>(),
                });
                if let Some(e) = &f.error {
                    v["error"] = Value::String(e.clone());
                }
                v
            })
            .collect(),
    )
}

fn json_val(v: &wasmtime::Val) -> Value {
    let float = |x: f64| {
        serde_json::Number::from_f64(x).map_or_else(|| json!(x.to_string()), Value::Number)
    };
    let (ty, value) = match v {
        wasmtime::Val::I32(x) => ("i32", json!(x)),
        wasmtime::Val::I64(x) => ("i64", json!(x)),
        wasmtime::Val::F32(x) => ("f32", float(f64::from(f32::from_bits(*x)))),
        wasmtime::Val::F64(x) => ("f64", float(f64::from_bits(*x))),
        other => ("other", json!(format!("{other:?}"))),
    };
    json!({ "type": ty, "value": value })
}

/// A result as text.
pub fn show_val(v: &wasmtime::Val) -> String {
    match v {
        wasmtime::Val::I32(x) => x.to_string(),
        wasmtime::Val::I64(x) => x.to_string(),
        wasmtime::Val::F32(x) => f32::from_bits(*x).to_string(),
        wasmtime::Val::F64(x) => f64::from_bits(*x).to_string(),
        other => format!("{other:?}"),
    }
}

/// A demangled name without generic arguments (`f<T, U>` → `f`), which in Rust can run to
/// hundreds of characters; a leading `<T as Trait>` qualification is kept.
pub fn short_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut prev = ' ';
    for c in name.chars() {
        match c {
            '<' if depth > 0 || (prev.is_alphanumeric() || prev == '_' || prev == '}') => {
                depth += 1
            }
            // A turbofish: `f::<T>::g` → `f::g`.
            '<' if prev == ':' && out.ends_with("::") => {
                out.truncate(out.len() - 2);
                depth += 1
            }
            // `->` of a `fn() -> T` argument closes nothing.
            '>' if depth > 0 && prev != '-' => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
        prev = c;
    }
    out
}

/// A source path without the Cargo registry's or the Rust toolchain's long prefix, or
/// the current directory's.
pub fn short_path(path: &str) -> &str {
    if let Ok(cwd) = std::env::current_dir()
        && let Some(rest) = cwd.to_str().and_then(|cwd| path.strip_prefix(cwd))
        && let Some(rest) = rest.strip_prefix('/')
    {
        return rest;
    }
    if let Some(i) = path.find("/registry/src/") {
        let rest = &path[i + "/registry/src/".len()..];
        return rest.split_once('/').map_or(rest, |(_, r)| r);
    }
    if let Some(rest) = path.strip_prefix("/rustc/") {
        return rest.split_once('/').map_or(rest, |(_, r)| r);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_generic_arguments() {
        assert_eq!(
            short_name("std::rt::lang_start::<()>::{{closure}}"),
            "std::rt::lang_start::{{closure}}"
        );
        assert_eq!(
            short_name("<alloc::vec::Vec<u8> as core::ops::Drop>::drop"),
            "<alloc::vec::Vec as core::ops::Drop>::drop"
        );
        assert_eq!(short_name("a < b"), "a < b");
        assert_eq!(
            short_name("call_once<fn() -> core::result::Result<(), String>, ()>"),
            "call_once"
        );
    }
}
