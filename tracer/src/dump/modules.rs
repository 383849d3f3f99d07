//! The module map: every registered module, with its `.eh_frame` and symbols where no
//! host file holds them (JIT code).

use clew_unwinder::{Module, Registry};

use super::{CHUNK, DumpError, DumpWriter};
use crate::sink::Sink;
use crate::wire::varint::{self, zigzag};
use crate::wire::{
    Bytes, EhFrameChunk, MAX_NAME, ModuleKind, ModuleRecord, Record, SourceOffsetsRecord,
    SymbolsRecord, truncate_str,
};

/// Which modules' `.eh_frame` bytes go into the dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EhFramePolicy {
    /// JIT modules only: other code has files on the host.
    #[default]
    Jit,
    /// Every module (a kernel whose loaded crates are not on the host).
    All,
    None,
}

/// Finds a module's build-id.
pub type BuildIdFn = fn(&Module) -> Option<&'static [u8]>;

/// What to write of each module.
#[derive(Clone, Copy, Debug)]
pub struct ModuleOptions {
    pub eh_frame: EhFramePolicy,
    /// Symbol maps (JIT function names).
    pub symbols: bool,
    /// The module's build-id, when the embedder knows it (e.g. from its ELF notes).
    pub build_id: Option<BuildIdFn>,
}

impl Default for ModuleOptions {
    fn default() -> Self {
        ModuleOptions {
            eh_frame: EhFramePolicy::Jit,
            symbols: true,
            build_id: None,
        }
    }
}

/// At most this many bytes of a build-id are kept.
const MAX_BUILD_ID: usize = 64;

impl<S: Sink> DumpWriter<S> {
    /// Every module of `registry` (e.g. `clew_unwinder::global()`). Uses the registry's
    /// non-blocking walk: if a registration was in progress (the writer lock is held,
    /// maybe by the code that panicked), writes a note instead and returns `Ok(None)`.
    /// Otherwise returns how many modules were written.
    pub fn modules(
        &mut self,
        registry: &Registry,
        opts: &ModuleOptions,
    ) -> Result<Option<usize>, DumpError> {
        let mut n = 0;
        let mut err = None;
        let walked = registry.try_for_each_module(|m| {
            n += 1;
            if let Err(e) = self.module(m, opts) {
                err.get_or_insert(e);
            }
        });
        if !walked {
            self.note("module map not written: the registry was being modified")?;
            return Ok(None);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(Some(n)),
        }
    }

    /// One module: its record, then its `.eh_frame` chunks and symbols as `opts` say.
    pub fn module(&mut self, m: &Module, opts: &ModuleOptions) -> Result<(), DumpError> {
        let kind = match m.kind() {
            clew_unwinder::ModuleKind::Static => ModuleKind::Static,
            clew_unwinder::ModuleKind::LoadedObject => ModuleKind::LoadedObject,
            clew_unwinder::ModuleKind::Jit => ModuleKind::Jit,
        };
        let eh = m.eh_frame();
        let include = match opts.eh_frame {
            EhFramePolicy::All => true,
            EhFramePolicy::Jit => kind == ModuleKind::Jit,
            EhFramePolicy::None => false,
        };
        let symbols = if opts.symbols {
            m.symbols().symbols()
        } else {
            &[]
        };
        let build_id = opts
            .build_id
            .and_then(|f| f(m))
            .map(|b| Bytes(&b[..b.len().min(MAX_BUILD_ID)]));
        let text = m.text();
        let id = m.id().0;
        // On hosts, a loaded object is named by its file (the loader names the main
        // executable ""), so a decoder finds it.
        #[cfg(all(feature = "std", target_os = "linux", target_arch = "x86_64"))]
        let name = super::host::object_path(m).unwrap_or(m.name());
        #[cfg(not(all(feature = "std", target_os = "linux", target_arch = "x86_64")))]
        let name = m.name();
        self.out.put(&Record::Module(ModuleRecord {
            id,
            kind,
            text_start: text.start as u64,
            text_end: text.end as u64,
            name: truncate_str(name, MAX_NAME).0,
            build_id,
            eh_frame_addr: eh.as_ptr() as u64,
            eh_frame_len: eh.len() as u64,
            eh_frame_included: include,
            symbols: symbols.len() as u32,
        }))?;
        if include {
            self.eh_frame(id, eh)?;
        }
        self.symbols(id, text.start as u64, symbols)?;
        if opts.symbols {
            self.source_offsets(id, text.start as u64, m.symbols().source_offsets())?;
        }
        Ok(())
    }

    /// The code address → source offset map of module `id` (text at `text_start`),
    /// packed into [`SourceOffsets`](Record::SourceOffsets) records.
    pub fn source_offsets(
        &mut self,
        id: u64,
        text_start: u64,
        map: &[(usize, Option<u32>)],
    ) -> Result<(), DumpError> {
        let mut count = 0u32;
        let mut at = 0;
        let mut prev = text_start;
        for &(addr, off) in map {
            if at + 2 * varint::MAX_U64 > CHUNK {
                self.flush_source_offsets(id, count, at)?;
                count = 0;
                at = 0;
                prev = text_start;
            }
            let addr = addr as u64;
            at = varint::put(
                &mut self.scratch,
                at,
                zigzag(addr.wrapping_sub(prev) as i64),
            );
            at = varint::put(&mut self.scratch, at, off.map_or(0, |o| u64::from(o) + 1));
            prev = addr;
            count += 1;
        }
        if count > 0 {
            self.flush_source_offsets(id, count, at)?;
        }
        Ok(())
    }

    fn flush_source_offsets(&mut self, id: u64, count: u32, len: usize) -> Result<(), DumpError> {
        self.out.put(&Record::SourceOffsets(SourceOffsetsRecord {
            module: id,
            count,
            data: Bytes(&self.scratch[..len]),
        }))
    }

    /// `.eh_frame` bytes of module `id`, in chunks.
    pub fn eh_frame(&mut self, id: u64, bytes: &[u8]) -> Result<(), DumpError> {
        for (i, c) in bytes.chunks(CHUNK).enumerate() {
            self.out.put(&Record::EhFrame(EhFrameChunk {
                module: id,
                offset: (i * CHUNK) as u64,
                bytes: Bytes(c),
            }))?;
        }
        Ok(())
    }

    /// The symbols of module `id` (text starting at `text_start`), packed into records.
    pub fn symbols(
        &mut self,
        id: u64,
        text_start: u64,
        symbols: &[clew_unwinder::Symbol],
    ) -> Result<(), DumpError> {
        let mut first = 0u32;
        let mut count = 0u32;
        let mut at = 0;
        let mut prev = text_start;
        for (i, s) in symbols.iter().enumerate() {
            let name = truncate_str(&s.name, MAX_NAME).0;
            let need = 3 * varint::MAX_U64 + name.len();
            if at + need > CHUNK {
                self.flush_symbols(id, first, count, at)?;
                first = i as u32;
                count = 0;
                at = 0;
                prev = text_start;
            }
            let start = s.range.start as u64;
            at = varint::put(
                &mut self.scratch,
                at,
                zigzag(start.wrapping_sub(prev) as i64),
            );
            let len = s.range.end.saturating_sub(s.range.start) as u64;
            at = varint::put(&mut self.scratch, at, len);
            at = varint::put(&mut self.scratch, at, name.len() as u64);
            self.scratch[at..at + name.len()].copy_from_slice(name.as_bytes());
            at += name.len();
            prev = start;
            count += 1;
        }
        if count > 0 {
            self.flush_symbols(id, first, count, at)?;
        }
        Ok(())
    }

    fn flush_symbols(
        &mut self,
        id: u64,
        first: u32,
        count: u32,
        len: usize,
    ) -> Result<(), DumpError> {
        self.out.put(&Record::Symbols(SymbolsRecord {
            module: id,
            first,
            count,
            data: Bytes(&self.scratch[..len]),
        }))
    }
}
