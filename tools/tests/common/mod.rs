//! Shared by the JIT tests: a small cranelift-jit program whose functions call back into
//! Rust, compiled with its unwind info collected for clew.
#![allow(dead_code)]

use clew::jit::cranelift::JitUnwindInfo;
use cranelift_codegen::ir::{AbiParam, InstBuilder, types::I64};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module as _, default_libcall_names};

/// A compiled chain f → g → `callback`.
pub struct Chain {
    pub module: JITModule,
    pub f: FuncId,
    pub g: FuncId,
    /// The unwind info of f and g, not registered yet.
    pub unwind: JitUnwindInfo,
}

/// Compiles `f(x) = g(x) * 2` and `g(x) = callback(x) + 1` (work after each call, so no
/// tail calls) with the given cranelift settings; `callback` is an `extern "C"` (or
/// `"C-unwind"`) `fn(i64) -> i64` imported as the symbol `callback`.
pub fn compile_chain(flags: &[(&str, &str)], callback: *const u8) -> Chain {
    let mut jb = JITBuilder::with_flags(flags, default_libcall_names()).unwrap();
    jb.symbol("callback", callback);
    let mut module = JITModule::new(jb);
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I64));
    let cb = module
        .declare_function("callback", Linkage::Import, &sig)
        .unwrap();
    let g = module.declare_function("g", Linkage::Local, &sig).unwrap();
    let f = module.declare_function("f", Linkage::Export, &sig).unwrap();
    let mut unwind = JitUnwindInfo::new();
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    for (id, callee, add, mul) in [(g, cb, 1, 1), (f, g, 0, 2)] {
        ctx.func.signature = sig.clone();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let x = b.block_params(block)[0];
        let callee = module.declare_func_in_func(callee, b.func);
        let call = b.ins().call(callee, &[x]);
        let v = b.inst_results(call)[0];
        let v = b.ins().iadd_imm_s(v, add);
        let v = b.ins().imul_imm_s(v, mul);
        b.ins().return_(&[v]);
        b.finalize(module.target_config());
        module.define_function(id, &mut ctx).unwrap();
        unwind.add(&ctx, module.isa(), id).unwrap();
        module.clear_context(&mut ctx);
    }
    module.finalize_definitions().unwrap();
    Chain {
        module,
        f,
        g,
        unwind,
    }
}
