//! Host-side glue of the `clew` binary: the subcommands, and the JIT integrations
//! (Wasmtime, cranelift-jit) that register their code with clew's registry.

pub mod demo;
pub mod eh_frame;
pub mod jit;
pub mod run;
pub mod run_gdb;
pub mod symbolize;
