//! `backtrace`'s `Symbol`, `SymbolName` and `BytesOrWideString`.

use alloc::borrow::Cow;
use core::ffi::c_void;
use core::fmt;

use crate::{Frame, Language, Name};

/// One resolved source-level frame of an address.
#[derive(Clone, Debug)]
pub struct Symbol {
    frame: Frame,
    start: Option<u64>,
}

impl Symbol {
    pub(crate) fn new(frame: Frame, start: Option<u64>) -> Self {
        Symbol { frame, start }
    }

    /// The function's name.
    pub fn name(&self) -> Option<SymbolName<'_>> {
        self.frame.function.as_ref().map(SymbolName::from_name)
    }

    /// The start address of the enclosing function, when known.
    pub fn addr(&self) -> Option<*mut c_void> {
        self.start.map(|a| a as usize as *mut c_void)
    }

    /// The source file, as bytes.
    pub fn filename_raw(&self) -> Option<BytesOrWideString<'_>> {
        self.frame
            .file
            .as_deref()
            .map(|f| BytesOrWideString::Bytes(f.as_bytes()))
    }

    /// The source file.
    #[cfg(feature = "std")]
    pub fn filename(&self) -> Option<&std::path::Path> {
        self.frame.file.as_deref().map(std::path::Path::new)
    }

    /// The source file as text (available without `std`).
    pub fn filename_str(&self) -> Option<&str> {
        self.frame.file.as_deref()
    }

    pub fn lineno(&self) -> Option<u32> {
        self.frame.line
    }

    pub fn colno(&self) -> Option<u32> {
        self.frame.column
    }

    /// clew's full frame (inlined flag, discriminator, JIT source offset).
    pub fn frame(&self) -> &Frame {
        &self.frame
    }
}

/// A symbol's name: raw bytes, displayed demangled (Rust and C++).
#[derive(Clone)]
pub struct SymbolName<'a> {
    bytes: &'a [u8],
    name: Option<&'a Name>,
}

impl<'a> SymbolName<'a> {
    /// A name from raw (possibly mangled) bytes.
    pub fn new(bytes: &'a [u8]) -> SymbolName<'a> {
        SymbolName { bytes, name: None }
    }

    fn from_name(name: &'a Name) -> SymbolName<'a> {
        SymbolName {
            bytes: name.raw().as_bytes(),
            name: Some(name),
        }
    }

    /// The raw name, if UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.bytes).ok()
    }

    /// The raw name.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl fmt::Display for SymbolName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(n) => f.write_str(n.demangled()),
            None => {
                let raw = alloc::string::String::from_utf8_lossy(self.bytes);
                match crate::demangle(&raw, Language::Unknown) {
                    Some(d) => f.write_str(&d),
                    None => f.write_str(&raw),
                }
            }
        }
    }
}

impl fmt::Debug for SymbolName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A file name as bytes (Unix) or UTF-16 (Windows); clew only makes `Bytes`.
#[derive(Clone, Copy, Debug)]
pub enum BytesOrWideString<'a> {
    Bytes(&'a [u8]),
    Wide(&'a [u16]),
}

impl<'a> BytesOrWideString<'a> {
    pub fn to_str_lossy(&self) -> Cow<'a, str> {
        match *self {
            BytesOrWideString::Bytes(b) => alloc::string::String::from_utf8_lossy(b),
            BytesOrWideString::Wide(w) => Cow::Owned(alloc::string::String::from_utf16_lossy(w)),
        }
    }

    #[cfg(feature = "std")]
    pub fn into_path_buf(self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.to_str_lossy().into_owned())
    }
}

impl fmt::Display for BytesOrWideString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}
