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
    /// Build the demo no_std kernel (tools/kernel), boot it under QEMU and show its console.
    Qemu(clew::qemu::QemuArgs),
    /// Decode a post-mortem dump (`clew run --dump`): cause, backtrace re-unwound on
    /// this host, modules, last events.
    Decode(clew::decode::DecodeArgs),
    /// Start the system gdb attached to a `clew run --gdb` stub (ADDR: HOST:PORT or a pty).
    Gdb(clew::run_gdb::GdbArgs),
}

fn main() {
    if let Err(e) = dispatch() {
        // A reader that went away (`clew ... | head`) is not an error to report.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if !broken_pipe {
            eprintln!("clew: {e:#}");
            std::process::exit(1);
        }
    }
}

fn dispatch() -> Result<()> {
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
        Command::Qemu(args) => std::process::exit(clew::qemu::run(&args, &mut std::io::stdout())),
        Command::Decode(args) => {
            std::process::exit(clew::decode::run(&args, &mut std::io::stdout().lock()))
        }
        Command::Symbolize(args) => {
            clew::symbolize::run(&args, &mut clew::symbolize::stdin(), &mut std::io::stdout())
        }
        Command::Gdb(args) => clew::run_gdb::exec_gdb(&args),
    }
}
