//! `backtrace`'s owned capture: [`Backtrace`], [`BacktraceFrame`], [`BacktraceSymbol`].

use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;

use super::{Frame, Symbol, SymbolName};

/// A captured stack: its frames, resolved now ([`Backtrace::new`]) or later
/// ([`Backtrace::new_unresolved`] + [`Backtrace::resolve`]).
#[derive(Clone, Default)]
pub struct Backtrace {
    frames: Vec<BacktraceFrame>,
}

/// One captured frame and, once resolved, its symbols (innermost inlined first).
#[derive(Clone)]
pub struct BacktraceFrame {
    frame: Frame,
    symbols: Option<Vec<BacktraceSymbol>>,
}

/// One resolved symbol of a [`BacktraceFrame`].
#[derive(Clone, Debug)]
pub struct BacktraceSymbol {
    symbol: Symbol,
}

impl Backtrace {
    /// Captures the calling thread's stack and resolves it.
    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    pub fn new() -> Backtrace {
        let mut bt = Self::new_unresolved();
        bt.resolve();
        bt
    }

    /// Captures the calling thread's stack without resolving symbols (cheap).
    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    pub fn new_unresolved() -> Backtrace {
        let mut frames = Vec::new();
        super::trace(|f| {
            frames.push(BacktraceFrame {
                frame: *f,
                symbols: None,
            });
            true
        });
        Backtrace { frames }
    }

    pub fn frames(&self) -> &[BacktraceFrame] {
        &self.frames
    }

    /// Resolves every frame not resolved yet.
    pub fn resolve(&mut self) {
        for f in &mut self.frames {
            f.resolve();
        }
    }
}

impl From<Vec<BacktraceFrame>> for Backtrace {
    fn from(frames: Vec<BacktraceFrame>) -> Self {
        Backtrace { frames }
    }
}

impl From<Backtrace> for Vec<BacktraceFrame> {
    fn from(bt: Backtrace) -> Self {
        bt.frames
    }
}

impl From<Frame> for BacktraceFrame {
    fn from(frame: Frame) -> Self {
        BacktraceFrame {
            frame,
            symbols: None,
        }
    }
}

impl BacktraceFrame {
    pub fn ip(&self) -> *mut c_void {
        self.frame.ip()
    }

    pub fn symbol_address(&self) -> *mut c_void {
        match self.symbols.as_deref().and_then(|s| s.last()?.addr()) {
            Some(a) => a,
            None => self.frame.ip(),
        }
    }

    pub fn module_base_address(&self) -> Option<*mut c_void> {
        self.frame.module_base_address()
    }

    /// The frame's symbols (empty until resolved, or when nothing is known).
    pub fn symbols(&self) -> &[BacktraceSymbol] {
        self.symbols.as_deref().unwrap_or(&[])
    }

    /// Resolves this frame's symbols, if not done yet.
    pub fn resolve(&mut self) {
        if self.symbols.is_some() {
            return;
        }
        let mut symbols = Vec::new();
        super::resolve_frame(&self.frame, |s| {
            symbols.push(BacktraceSymbol { symbol: s.clone() })
        });
        self.symbols = Some(symbols);
    }
}

impl BacktraceSymbol {
    pub fn name(&self) -> Option<SymbolName<'_>> {
        self.symbol.name()
    }

    pub fn addr(&self) -> Option<*mut c_void> {
        self.symbol.addr()
    }

    #[cfg(feature = "std")]
    pub fn filename(&self) -> Option<&std::path::Path> {
        self.symbol.filename()
    }

    /// The source file as text (available without `std`).
    pub fn filename_str(&self) -> Option<&str> {
        self.symbol.filename_str()
    }

    pub fn lineno(&self) -> Option<u32> {
        self.symbol.lineno()
    }

    pub fn colno(&self) -> Option<u32> {
        self.symbol.colno()
    }

    /// clew's full frame (inlined flag, JIT source offset).
    pub fn frame(&self) -> &crate::Frame {
        self.symbol.frame()
    }
}

/// `backtrace`'s layout: `  N: name` then `             at file:line:col`.
impl fmt::Debug for Backtrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stack backtrace:\n")?;
        for (i, frame) in self.frames.iter().enumerate() {
            let symbols = frame.symbols();
            if symbols.is_empty() {
                writeln!(f, "{i:4}: {:#x} - <unknown>", frame.ip() as usize)?;
            }
            for (j, s) in symbols.iter().enumerate() {
                if j == 0 {
                    write!(f, "{i:4}: ")?;
                } else {
                    f.write_str("      ")?;
                }
                match s.name() {
                    Some(n) => writeln!(f, "{n}")?,
                    None => writeln!(f, "<unknown>")?,
                }
                if let Some(file) = s.filename_str() {
                    write!(f, "             at {file}")?;
                    if let Some(l) = s.lineno() {
                        write!(f, ":{l}")?;
                        if let Some(c) = s.colno() {
                            write!(f, ":{c}")?;
                        }
                    }
                    f.write_str("\n")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for BacktraceFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BacktraceFrame")
            .field("ip", &self.ip())
            .field("symbols", &self.symbols())
            .finish()
    }
}
