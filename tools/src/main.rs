//! `clew`: the host CLI.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clew",
    version,
    about = "Debug JIT code where ordinary debuggers can't reach"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a small wasm module under Wasmtime and print clew's backtrace through its JIT frames.
    Demo,
    /// Run a wasm module (.wat/.wasm, or the embedded demo) with symbolized backtraces
    /// through its JIT frames.
    Run(clew::run::RunArgs),
    /// List and check the .eh_frame call-frame information of an ELF file.
    EhFrame(clew::eh_frame::EhFrameArgs),
    /// Addresses to functions, inlined frames and file:line (addr2line-compatible flags).
    Symbolize(clew::symbolize::SymbolizeArgs),
    /// Start the system gdb attached to a `clew run --gdb` stub (ADDR: HOST:PORT or a pty).
    Gdb(clew::run_gdb::GdbArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo => clew::demo::run(),
        Command::Run(args) => {
            let status = clew::run::run(&args, &mut std::io::stdout());
            clew::run_gdb::finish(status);
            std::process::exit(status)
        }
        Command::EhFrame(args) => {
            let status = clew::eh_frame::run(&args, &mut std::io::stdout().lock())?;
            std::process::exit(status)
        }
        Command::Symbolize(args) => {
            clew::symbolize::run(&args, &mut clew::symbolize::stdin(), &mut std::io::stdout())
        }
        Command::Gdb(args) => clew::run_gdb::exec_gdb(&args),
    }
}
