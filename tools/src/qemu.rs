//! `clew qemu`: builds the demo kernel (`tools/kernel`, a no_std x86_64 kernel), boots it
//! under `qemu-system-x86_64` through PVH, and relays its serial console (COM1) to
//! stdout. The kernel registers its own image with clew's registry, panics inside nested
//! functions holding `Drop` guards, catches the panic with clew's catch point and prints
//! the backtrace, symbolized from its own ELF file (which QEMU loads next to it).
//!
//! Exit status: 0 when the kernel ran every check and said so (its marker line and the
//! debug-exit device's success status), 1 when it reported a failure, crashed or timed
//! out, 2 when the kernel could not be built or QEMU could not be started.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use clap::Args;

/// The target the kernel is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The RUSTFLAGS of every crate of the kernel (see tools/kernel/README.md): unwind tables
/// and landing pads in the libraries (the final binary gets `-C panic=abort` from the
/// rustc wrapper), and absolute addresses (the kernel runs where it is linked).
pub const KERNEL_RUSTFLAGS: [&str; 3] = [
    "-Cpanic=unwind",
    "-Cforce-unwind-tables=yes",
    "-Crelocation-model=static",
];

/// The line the kernel prints after its last successful check.
pub const MARKER: &str = "CLEW-KERNEL: ALL CHECKS PASSED";

/// QEMU's exit status when the kernel writes 0x10 to the debug-exit device (success).
pub const QEMU_SUCCESS: i32 = 33;
/// QEMU's exit status when the kernel writes 0x01 (a check failed).
pub const QEMU_FAILURE: i32 = 3;

/// Where QEMU loads the blobs the kernel reads (physical = virtual addresses): the
/// kernel's own ELF file first, 2 MiB-aligned. Below it lives the kernel (at 1 MiB) and
/// its heap.
const BLOBS_AT: u64 = 256 << 20;

/// `clew qemu [OPTIONS]`
#[derive(Args, Debug)]
pub struct QemuArgs {
    /// Boot this kernel ELF instead of building tools/kernel.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Seconds before QEMU is stopped (the boot takes well under one).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// Runs `clew qemu`; returns the exit status.
pub fn run(args: &QemuArgs, out: &mut dyn Write) -> i32 {
    let kernel = match &args.kernel {
        Some(k) => k.clone(),
        None => match build_kernel() {
            Ok(k) => k,
            Err(e) => {
                let _ = writeln!(out, "clew qemu: {e:#}");
                return 2;
            }
        },
    };
    match boot(&kernel, args.timeout, out) {
        Ok(status) => status,
        Err(e) => {
            let _ = writeln!(out, "clew qemu: {e:#}");
            2
        }
    }
}

/// The kernel crate's directory.
pub fn kernel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel")
}

/// The cargo target directory the kernel is built in: `$CARGO_TARGET_DIR`, else the
/// workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Builds the kernel (cargo's own up-to-date check makes a second build free) and
/// returns its ELF file.
pub fn build_kernel() -> Result<PathBuf> {
    let dir = kernel_dir();
    let target_dir = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let status = Command::new(&cargo)
        .current_dir(&dir)
        .args(["build", "--quiet", "--release", "--target", KERNEL_TARGET])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", KERNEL_RUSTFLAGS.join("\x1f"))
        .env("RUSTC_WORKSPACE_WRAPPER", dir.join("rustc-wrapper.sh"))
        .env_remove("RUSTFLAGS")
        .status()
        .with_context(|| format!("running {cargo:?} to build the kernel"))?;
    if !status.success() {
        bail!("building the kernel in {} failed ({status})", dir.display());
    }
    let elf = target_dir.join(KERNEL_TARGET).join("release/clew-kernel");
    if !elf.is_file() {
        bail!("the kernel build left no {}", elf.display());
    }
    Ok(elf)
}

/// The QEMU command line booting `kernel`: PVH (`-kernel` with an ELF that has a
/// `XEN_ELFNOTE_PHYS32_ENTRY` note), COM1 on stdout, the debug-exit device, no reboot
/// on a triple fault, and the kernel's ELF file loaded raw at [`BLOBS_AT`] for its
/// symbolizer (its place on the command line).
pub fn qemu_command(kernel: &Path, timeout: u64) -> Result<Command> {
    let elf_len = std::fs::metadata(kernel)
        .with_context(|| format!("reading {}", kernel.display()))?
        .len();
    let end = BLOBS_AT + elf_len;
    // RAM for the kernel, its heap below the blobs, and the blobs.
    let ram_mib = (end >> 20) + 64;
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", &timeout.to_string(), "qemu-system-x86_64"])
        .args([
            "-machine",
            "q35",
            "-cpu",
            "max",
            "-m",
            &format!("{ram_mib}M"),
        ])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-device")
        .arg(loader(kernel, BLOBS_AT)?)
        .arg("-append")
        .arg(format!("clew.elf={BLOBS_AT:#x},{elf_len}"));
    Ok(cmd)
}

fn loader(file: &Path, addr: u64) -> Result<String> {
    let path = file
        .to_str()
        .filter(|p| !p.contains(','))
        .with_context(|| {
            format!(
                "QEMU cannot load {} (not UTF-8, or a comma)",
                file.display()
            )
        })?;
    Ok(format!("loader,file={path},addr={addr:#x},force-raw=on"))
}

/// Boots `kernel`, relays its console line by line, and maps QEMU's exit to `clew
/// qemu`'s status.
pub fn boot(kernel: &Path, timeout: u64, out: &mut dyn Write) -> Result<i32> {
    let mut child = qemu_command(kernel, timeout)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (Debian: apt-get install qemu-system-x86)")?;
    let mut marker = false;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.context("reading the kernel's console")?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r');
        marker |= line == MARKER;
        writeln!(out, "{line}")?;
    }
    let status = child.wait().context("waiting for QEMU")?;
    Ok(match status.code() {
        Some(QEMU_SUCCESS) if marker => 0,
        Some(QEMU_SUCCESS) => {
            writeln!(out, "clew qemu: the kernel exited without its marker line")?;
            1
        }
        Some(QEMU_FAILURE) => {
            writeln!(out, "clew qemu: the kernel reported a failure")?;
            1
        }
        Some(124) => {
            writeln!(out, "clew qemu: timed out after {timeout} s")?;
            1
        }
        Some(127) => {
            bail!("qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)")
        }
        Some(0) => {
            writeln!(
                out,
                "clew qemu: QEMU exited with 0: a triple fault (the kernel crashed)"
            )?;
            1
        }
        other => {
            writeln!(out, "clew qemu: QEMU exited with {other:?}")?;
            1
        }
    })
}
