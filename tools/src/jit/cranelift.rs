//! cranelift-jit: build and register the `.eh_frame` cranelift-jit never emits.
//!
//! cranelift-jit registers no unwind information for the code it generates (neither with
//! libgcc nor anywhere else; see wasmtime issue #5574, "cranelift-jit: register unwind
//! info"), so no DWARF unwinder can walk out of a JIT frame: a backtrace, a panic or a
//! debugger stops at the first one. Cranelift does compute the unwind info of every
//! function; [`JitUnwindInfo`] collects it as functions are defined, turns it into an
//! `.eh_frame` (one CIE from the ISA, one FDE per function at its final address) and
//! registers that in clew's registry.
//!
//! ```ignore
//! let mut unwind = JitUnwindInfo::new();
//! module.define_function(id, &mut ctx)?;
//! unwind.add(&ctx, module.isa(), id)?;      // before `clear_context`
//! module.clear_context(&mut ctx);
//! // ... more functions ...
//! module.finalize_definitions()?;
//! let registration = unwind.register(&module, "my jit")?;   // keep it while the code runs
//! ```

use std::ops::Range;

use anyhow::{Context as _, Result, anyhow, bail};
use clew_unwinder::{ModuleDesc, ModuleHandle, ModuleKind, Registry};
use cranelift_codegen::Context;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module as _};
use gimli::write::{Address, EhFrame, EndianVec, FrameTable};

use super::{JitSymbol, SymbolMap};

/// The unwind information of the functions defined in a `JITModule`, collected until
/// the module is finalized.
#[derive(Default)]
pub struct JitUnwindInfo {
    functions: Vec<Defined>,
}

struct Defined {
    id: FuncId,
    size: usize,
    unwind: Option<UnwindInfo>,
}

impl JitUnwindInfo {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the unwind info of the function `id` just compiled in `ctx`: call it
    /// right after `module.define_function(id, ctx)` and before `clear_context`.
    pub fn add(&mut self, ctx: &Context, isa: &dyn TargetIsa, id: FuncId) -> Result<()> {
        let code = ctx
            .compiled_code()
            .ok_or_else(|| anyhow!("{id}: not compiled (call add after define_function)"))?;
        let unwind = code
            .create_unwind_info(isa)
            .map_err(|e| anyhow!("{id}: creating unwind info: {e:?}"))?;
        self.functions.push(Defined {
            id,
            size: code.code_buffer().len(),
            unwind,
        });
        Ok(())
    }

    /// How many functions were recorded.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Builds the `.eh_frame` of every recorded function (at its finalized address) and
    /// registers it in clew's [`clew_unwinder::global`] registry as one
    /// [`ModuleKind::Jit`] module named `name`, whose text spans the lowest to the
    /// highest function. Call after `module.finalize_definitions()`.
    ///
    /// The returned guard owns the `.eh_frame` bytes and deregisters them on drop. Drop
    /// it before the module's code is freed (`JITModule::free_memory`): new code at the
    /// same addresses would otherwise be unwound with stale rules.
    pub fn register(&self, module: &JITModule, name: &str) -> Result<JitRegistration> {
        self.register_in(clew_unwinder::global(), module, name)
    }

    /// Like [`JitUnwindInfo::register`], in a given registry.
    pub fn register_in(
        &self,
        registry: &'static Registry,
        module: &JITModule,
        name: &str,
    ) -> Result<JitRegistration> {
        let isa = module.isa();
        let cie = isa
            .create_systemv_cie()
            .ok_or_else(|| anyhow!("{}: no SystemV unwind info for this ISA", isa.name()))?;
        let mut table = FrameTable::default();
        let cie = table.add_cie(cie);
        let mut symbols = Vec::with_capacity(self.functions.len());
        let mut fdes = 0;
        for f in &self.functions {
            let start = module.get_finalized_function(f.id) as usize;
            match &f.unwind {
                Some(UnwindInfo::SystemV(u)) => {
                    table.add_fde(cie, u.to_fde(Address::Constant(start as u64)));
                    fdes += 1;
                }
                None => {}
                Some(_) => bail!("{}: unwind info is not SystemV", f.id),
            }
            let decl = module.declarations().get_function_decl(f.id);
            symbols.push(JitSymbol {
                name: decl.name.clone().unwrap_or_else(|| f.id.to_string()),
                range: start..start + f.size,
            });
        }
        if fdes == 0 {
            bail!("no function with unwind info (was the `unwind_info` flag off?)");
        }
        let text = symbols.iter().map(|s| s.range.start).min().unwrap_or(0)
            ..symbols.iter().map(|s| s.range.end).max().unwrap_or(0);

        let mut eh_frame = EhFrame(EndianVec::new(gimli::NativeEndian));
        table
            .write_eh_frame(&mut eh_frame)
            .context("writing .eh_frame")?;
        let mut bytes = eh_frame.0.into_vec();
        // The zero terminator libgcc's `__register_frame` expects: the section stays
        // usable by both unwinders.
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        let bytes = bytes.into_boxed_slice();
        // SAFETY: the heap allocation does not move when the box does; the guard owns it
        // and deregisters (waiting for readers) before freeing it.
        let eh_frame: &'static [u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let desc = ModuleDesc {
            name,
            kind: ModuleKind::Jit,
            text: Some(text.clone()),
            eh_frame,
            eh_frame_hdr: None,
            lsda: None,
        };
        // SAFETY: as above.
        let map = SymbolMap::new(symbols.clone(), Vec::new());
        // Through the tracer: a module-registered event goes to the flight recorder.
        let handle = unsafe { clew_tracer::modules::register(registry, &desc, map) }
            .map_err(|e| anyhow!("registering cranelift-jit code {name:?}: {e}"))?;
        Ok(JitRegistration {
            registry,
            handle,
            text,
            functions: SymbolMap::new(symbols, Vec::new()),
            eh_frame: bytes,
        })
    }
}

/// cranelift-jit code registered in a clew registry: owns the `.eh_frame` built for it
/// and deregisters it on drop.
pub struct JitRegistration {
    registry: &'static Registry,
    handle: ModuleHandle,
    text: Range<usize>,
    functions: SymbolMap,
    eh_frame: Box<[u8]>,
}

impl JitRegistration {
    pub fn handle(&self) -> ModuleHandle {
        self.handle
    }

    /// The registered text range: the lowest function's start to the highest's end.
    pub fn text(&self) -> Range<usize> {
        self.text.clone()
    }

    /// The `.eh_frame` built for the functions (zero-terminated).
    pub fn eh_frame(&self) -> &[u8] {
        &self.eh_frame
    }

    /// The registered functions, with their finalized ranges.
    pub fn functions(&self) -> &[JitSymbol] {
        self.functions.symbols()
    }

    /// The function holding `pc` and `pc`'s offset into it (pass `pc - 1` for a return
    /// address).
    pub fn function_at(&self, pc: usize) -> Option<(&str, usize)> {
        self.functions.lookup(pc).map(|h| (h.name, h.offset))
    }
}

impl Drop for JitRegistration {
    fn drop(&mut self) {
        // Cannot fail: the handle is ours and deregistered only here. `eh_frame` is
        // freed after this returns, when no reader can use it any more.
        super::deregistering(self.registry, self.handle);
        let _ = self.registry.deregister(self.handle);
    }
}

impl std::fmt::Debug for JitRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitRegistration")
            .field("handle", &self.handle)
            .field("text", &format_args!("{:#x?}", self.text))
            .field("functions", &self.functions.symbols())
            .finish()
    }
}
