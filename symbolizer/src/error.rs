//! The symbolizer's error type: one per failed address or failed image, never one for a
//! whole batch.

use core::fmt;

/// Why an address or an image could not be symbolized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The image is not an ELF file this crate can read.
    BadImage(object::Error),
    /// A debug section is compressed and this build cannot decompress it (no `std`).
    CompressedSection(&'static str),
    /// The DWARF is malformed where this address needed it.
    Dwarf(gimli::Error),
    /// No image, JIT module or symbol covers the address.
    NotFound,
    /// A file could not be read (std layer).
    Io(alloc::string::String),
}

impl From<gimli::Error> for Error {
    fn from(e: gimli::Error) -> Self {
        Error::Dwarf(e)
    }
}

impl From<object::Error> for Error {
    fn from(e: object::Error) -> Self {
        Error::BadImage(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadImage(why) => write!(f, "not a readable ELF image: {why}"),
            Error::CompressedSection(name) => {
                write!(
                    f,
                    "{name} is compressed (decompression needs the `std` feature)"
                )
            }
            Error::Dwarf(e) => write!(f, "malformed DWARF: {e}"),
            Error::NotFound => f.write_str("no image, JIT module or symbol covers the address"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for Error {}
