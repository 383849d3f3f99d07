//! `clew run --gdb tcp:HOST:PORT|pty` and `clew gdb ADDR`: the program under a gdb stub
//! (clew-gdbstub-bridge's host target). The program runs until its first stop
//! (`clew.breakpoint`, a panic, or a trap in JIT code), waits there for gdb, and is
//! served each time it stops again.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clew_gdbstub_bridge::host::{self, PtyTransport, TcpTransport};
use clew_gdbstub_bridge::{Config, Transport};

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Where the stub listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GdbListen {
    /// `tcp:HOST:PORT`, `tcp:PORT` (loopback) or `tcp` (loopback, port 1234).
    Tcp(String),
    /// A new pseudo-terminal; its path is printed.
    Pty,
}

/// Parses `--gdb`'s value.
pub fn parse_listen(spec: &str) -> Result<GdbListen> {
    match spec {
        "pty" => Ok(GdbListen::Pty),
        "tcp" => Ok(GdbListen::Tcp("127.0.0.1:1234".into())),
        s if s.starts_with("tcp:") => {
            let rest = &s[4..];
            if rest.is_empty() {
                bail!("`{s}`: expected tcp:HOST:PORT or tcp:PORT");
            }
            if rest.parse::<u16>().is_ok() {
                Ok(GdbListen::Tcp(format!("127.0.0.1:{rest}")))
            } else if rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                Ok(GdbListen::Tcp(rest.to_owned()))
            } else {
                bail!("`{s}`: expected tcp:HOST:PORT or tcp:PORT")
            }
        }
        s => bail!("`{s}`: expected tcp:HOST:PORT, tcp:PORT or pty"),
    }
}

/// Installs the stub; prints where gdb connects (stderr, flushed: tests and scripts
/// wait for this line).
pub fn setup(spec: &str) -> Result<()> {
    let listen = parse_listen(spec)?;
    let mut config = Config::new(clew_unwinder::global());
    // Run-length encoding saves bytes on a slow UART; on TCP and a pty the bytes are
    // cheaper than encoding them.
    config.rle = false;
    // gdbserver's size: gdb reads memory in pieces of about half of it (larger pieces
    // were not faster with gdb 13, whose own decoding dominates).
    config.packet_size = 0x4800;
    config.provider = Some(&clew_unwinder::os::linux::DlIteratePhdr);
    let transport: Box<dyn Transport + Send> = match listen {
        GdbListen::Tcp(addr) => {
            let t = TcpTransport::bind(&addr).with_context(|| format!("listening on {addr}"))?;
            let local = t.local_addr()?;
            eprintln!("clew run: gdb stub listening on tcp {local} (clew gdb {local})");
            // TCP is reliable: let gdb turn acknowledgments off.
            config.no_ack = true;
            Box::new(t)
        }
        GdbListen::Pty => {
            let t = PtyTransport::open().context("opening a pty")?;
            eprintln!(
                "clew run: gdb stub on pty {} (clew gdb {})",
                t.path(),
                t.path()
            );
            Box::new(t)
        }
    };
    host::install(transport, config).context("installing the SIGTRAP handler")?;
    // After Wasmtime's: a trap in JIT code stops for gdb, then becomes Wasmtime's trap.
    host::install_fault_handlers().context("installing the fault handlers")?;
    ACTIVE.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether `--gdb` is on.
pub fn active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// The run ends with exit status `status`: gdb, if attached, sees the exit.
pub fn finish(status: i32) {
    if active() {
        host::exited(status);
    }
}

/// `clew.breakpoint` under gdb: stop here.
#[inline(never)]
pub fn breakpoint() {
    host::breakpoint();
}

/// A panic under gdb: stop at the panic point as SIGABRT.
pub fn on_panic() {
    if active() {
        host::stop_with_signal(libc::SIGABRT as u8);
    }
}

/// `clew gdb ADDR [-- GDB-ARGS...]`
#[derive(Args, Debug)]
pub struct GdbArgs {
    /// What `clew run --gdb` printed: HOST:PORT or a /dev/pts/N path.
    pub addr: String,
    /// More arguments for gdb (e.g. `-batch -ex bt`).
    #[arg(last = true)]
    pub gdb_args: Vec<String>,
}

/// Replaces this process with the system gdb attached to `addr`.
pub fn exec_gdb(args: &GdbArgs) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let gdb = std::env::var("GDB").unwrap_or_else(|_| "gdb".to_owned());
    let err = std::process::Command::new(&gdb)
        .arg("-q")
        .arg("-ex")
        .arg(format!("target remote {}", args.addr))
        .args(&args.gdb_args)
        .exec();
    Err(err).with_context(|| format!("running {gdb}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs() {
        assert_eq!(parse_listen("pty").unwrap(), GdbListen::Pty);
        assert_eq!(
            parse_listen("tcp:4000").unwrap(),
            GdbListen::Tcp("127.0.0.1:4000".into())
        );
        assert_eq!(
            parse_listen("tcp:0.0.0.0:4000").unwrap(),
            GdbListen::Tcp("0.0.0.0:4000".into())
        );
        assert!(parse_listen("tcp:").is_err());
        assert!(parse_listen("tcp:host").is_err());
        assert!(parse_listen("serial").is_err());
    }
}
