//! The one error type of the unwinder.

use core::fmt;

/// Why registering a module, looking up a PC or stepping a frame failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The `.eh_frame` bytes could not be parsed (truncated, bad length, bad pointer encoding…).
    BadEhFrame(gimli::Error),
    /// An FDE lies (partly) outside the text bounds it was registered with.
    FdeOutsideText { pc_begin: u64, pc_end: u64 },
    /// The text range is empty or wraps around.
    BadTextRange,
    /// The text range overlaps a module that is already registered.
    Overlap,
    /// A text range too large to index (> 4 GiB) or an address space with too many regions.
    TooLarge,
    /// The handle or `.eh_frame` pointer names no registered module.
    NotRegistered,
    /// No unwind information covers the PC.
    NoUnwindInfo { pc: u64 },
    /// Evaluating the CFI for a PC failed.
    BadCfi { pc: u64, error: gimli::Error },
    /// A CFI rule the unwinder does not support (e.g. a register it cannot hold).
    UnsupportedRule { pc: u64 },
    /// Reading memory at this address failed (unmapped, outside the stack bounds, or outside a snapshot).
    BadAddress { addr: u64 },
    /// The CFA did not move up the stack: a corrupt stack or a loop.
    CfaNotAdvancing { pc: u64, cfa: u64 },
    /// The walk reached the maximum depth without finding the end of the stack.
    TooDeep,
}

impl From<gimli::Error> for Error {
    fn from(e: gimli::Error) -> Self {
        Error::BadEhFrame(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadEhFrame(e) => write!(f, "malformed .eh_frame: {e}"),
            Error::FdeOutsideText { pc_begin, pc_end } => {
                write!(
                    f,
                    "FDE {pc_begin:#x}..{pc_end:#x} lies outside the module's text"
                )
            }
            Error::BadTextRange => write!(f, "empty or wrapping text range"),
            Error::Overlap => write!(f, "text range overlaps a registered module"),
            Error::TooLarge => write!(f, "module or address space too large to index"),
            Error::NotRegistered => write!(f, "no such registered module"),
            Error::NoUnwindInfo { pc } => write!(f, "no unwind info for pc {pc:#x}"),
            Error::BadCfi { pc, error } => write!(f, "bad CFI at pc {pc:#x}: {error}"),
            Error::UnsupportedRule { pc } => write!(f, "unsupported CFI rule at pc {pc:#x}"),
            Error::BadAddress { addr } => write!(f, "cannot read memory at {addr:#x}"),
            Error::CfaNotAdvancing { pc, cfa } => {
                write!(
                    f,
                    "CFA {cfa:#x} at pc {pc:#x} does not advance: corrupt stack"
                )
            }
            Error::TooDeep => write!(f, "stack deeper than the walk's limit"),
        }
    }
}

impl core::error::Error for Error {}
