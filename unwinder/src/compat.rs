//! Entry points with the shapes other runtimes already call.
//!
//! - libgcc: `__register_frame(begin)` hands over a whole zero-terminated `.eh_frame`
//!   section and nothing else (what Wasmtime does on Linux, once per module); the text
//!   bounds are derived from its FDEs. The `extern "C"` symbols themselves belong to the
//!   system-unwinder layer; these are the Rust functions behind them.
//! - Theseus: `external_unwind_info::{register_unwind_info, deregister_unwind_info}`,
//!   which its Wasmtime port calls with the text bounds and the `.eh_frame` bounds.

use crate::registry::{ModuleDesc, ModuleHandle, ModuleKind, Registry};
use crate::{Error, eh_frame};

/// Registers the zero-terminated `.eh_frame` section at `begin` as a JIT module, deriving
/// its text bounds from the FDEs (libgcc's `__register_frame` semantics).
///
/// # Safety
/// `begin` must point to a readable `.eh_frame` section ending with a zero terminator,
/// valid until it is deregistered.
pub unsafe fn register_frame(registry: &Registry, begin: *const u8) -> Result<ModuleHandle, Error> {
    // SAFETY: the caller promises a zero-terminated section.
    let len = unsafe { eh_frame::zero_terminated_len(begin, None)? };
    // SAFETY: `len` bytes were just walked; the caller keeps them alive.
    let bytes = unsafe { core::slice::from_raw_parts(begin, len) };
    let desc = ModuleDesc {
        name: "__register_frame",
        kind: ModuleKind::Jit,
        text: None,
        eh_frame: bytes,
        eh_frame_hdr: None,
        lsda: None,
    };
    // SAFETY: as above.
    unsafe { registry.register(&desc) }
}

/// Deregisters what [`register_frame`] registered for `begin` (`__deregister_frame`).
pub fn deregister_frame(registry: &Registry, begin: *const u8) -> Result<(), Error> {
    registry.deregister_eh_frame(begin)
}

/// Theseus's `external_unwind_info` API, on clew's [`crate::global`] registry.
pub mod theseus {
    use super::*;

    /// Registers the unwind info of a text section: `eh_frame_len` bytes of `.eh_frame`
    /// at `eh_frame_base` describe the code in `text_base .. text_base + text_len`.
    ///
    /// # Safety
    /// The `.eh_frame` bytes must stay valid until [`deregister_unwind_info`] returns.
    pub unsafe fn register_unwind_info(
        text_base: usize,
        text_len: usize,
        eh_frame_base: usize,
        eh_frame_len: usize,
    ) -> Result<(), &'static str> {
        // SAFETY: the caller promises the section is readable and kept alive.
        let bytes =
            unsafe { core::slice::from_raw_parts(eh_frame_base as *const u8, eh_frame_len) };
        let text = text_base
            ..text_base
                .checked_add(text_len)
                .ok_or("text range wraps around")?;
        let desc = ModuleDesc {
            name: "theseus unwind info",
            kind: ModuleKind::Jit,
            text: Some(text),
            eh_frame: bytes,
            eh_frame_hdr: None,
            lsda: None,
        };
        // SAFETY: as above.
        unsafe { crate::global().register(&desc) }
            .map(drop)
            .map_err(message)
    }

    /// Deregisters the unwind info registered for the text section at `text_base`.
    pub fn deregister_unwind_info(text_base: usize) -> Result<(), &'static str> {
        crate::global().deregister_text(text_base).map_err(message)
    }

    fn message(e: Error) -> &'static str {
        match e {
            Error::BadEhFrame(_) => "malformed .eh_frame",
            Error::FdeOutsideText { .. } => "an FDE lies outside the text section",
            Error::BadTextRange => "empty text section",
            Error::Overlap => "text section overlaps registered unwind info",
            Error::TooLarge => "text section too large",
            Error::NotRegistered => "no unwind info registered for this text section",
            _ => "unwind info registration failed",
        }
    }
}
