//! Host-side glue of the `clew` binary: the subcommands, and the JIT integrations
//! (Wasmtime, cranelift-jit) that register their code with clew's registry.

pub mod decode;
pub mod demo;
pub mod eh_frame;
pub mod jit;
pub mod progress;
/// `clew qemu`: the demo no_std kernel (tools/kernel) under QEMU.
pub mod qemu;
pub mod qemu_gdb;
pub mod report;
pub mod run;
pub mod run_dump;
pub mod run_gdb;
pub mod symbolize;
pub mod wasm_dwarf;
