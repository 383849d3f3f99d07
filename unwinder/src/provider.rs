//! The pull model: an embedder that already tracks its loaded code answers "which
//! module holds this PC?" when the registry has no entry for it.
//!
//! Theseus keeps every crate's text bounds and `.eh_frame` in its crate namespace; rather
//! than registering every crate twice, it can implement [`ModuleProvider`] and hand it to
//! the [`crate::Unwinder`].

use core::ops::Range;

/// The unwind sections of the module that holds a PC.
#[derive(Clone, Debug)]
pub struct ProvidedModule {
    pub text: Range<usize>,
    /// The `.eh_frame` section at its runtime address.
    pub eh_frame: &'static [u8],
    /// The `.eh_frame_hdr` section, if any: its binary-search table is used when present;
    /// without it, the FDEs are searched linearly.
    pub eh_frame_hdr: Option<&'static [u8]>,
}

/// Answers which module holds a PC. Called during stack walks, possibly from a panic
/// handler or a signal handler: implementations must not allocate or block.
pub trait ModuleProvider: Sync {
    fn find_module(&self, pc: usize) -> Option<ProvidedModule>;
}
