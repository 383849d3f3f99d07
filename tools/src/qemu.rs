//! `clew qemu`: builds the demo kernel (`tools/kernel`, a no_std x86_64 kernel), boots it
//! under `qemu-system-x86_64` through PVH, and relays its serial console (COM1) to
//! stdout. The kernel registers its own image with clew's registry, panics inside nested
//! functions holding `Drop` guards, catches the panic with clew's catch point and prints
//! the backtrace, symbolized from its own ELF file (which QEMU loads next to it).
//!
//! Then it runs Wasm under Wasmtime 48's no_std runtime: MODULE (`.wat`/`.wasm`, else an
//! embedded demo) is precompiled here for `x86_64-unknown-none` with the settings the
//! kernel's engine uses ([`precompile`]), loaded into guest RAM next to the kernel, and
//! the kernel registers its JIT code with clew and calls the exports (`--invoke`, comma
//! separated): host functions `clew.backtrace/panic/trace/breakpoint` as in `clew run`.
//!
//! Exit status: 0 when the kernel ran every check and said so (its marker line and the
//! debug-exit device's success status), 1 when it reported a failure, crashed or timed
//! out, or when an export of a user's MODULE trapped or panicked (as `clew run`), 2 for a
//! bad module, or when the kernel could not be built or QEMU could not be started.

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

/// The embedded demo module: nested calls into `clew.backtrace` (`main`), into
/// `clew.panic` (`explode`), and into a trap (`trap`).
pub const DEMO: &str = r#"
(module $demo
  (import "clew" "backtrace" (func $backtrace))
  (import "clew" "trace" (func $trace (param i32 i64)))
  (import "clew" "panic" (func $panic (param i32)))
  (func $main (export "main") (result i32)
    (call $trace (i32.const 1) (i64.const 42))
    (call $outer (i32.const 3)))
  (func $outer (param i32) (result i32)
    (call $middle (local.get 0))
    (i32.add (i32.const 1)))
  (func $middle (param i32) (result i32)
    (call $inner (local.get 0))
    (i32.mul (i32.const 2)))
  (func $inner (param i32) (result i32)
    (call $backtrace)
    (local.get 0))
  (func $explode (export "explode")
    (call $explode_middle (i32.const 7)))
  (func $explode_middle (param i32)
    (call $explode_inner (local.get 0)))
  (func $explode_inner (param i32)
    (call $panic (local.get 0)))
  (func $trap (export "trap") (result i32)
    (call $trap_inner (i32.const 0)))
  (func $trap_inner (param i32) (result i32)
    (i32.div_u (i32.const 1) (local.get 0))))
"#;

/// The exports the demo's run calls.
pub const DEMO_EXPORTS: &str = "main,explode,trap";

/// `clew qemu [OPTIONS] [MODULE]`
#[derive(Args, Debug)]
pub struct QemuArgs {
    /// The module (`.wat` or `.wasm`) the kernel runs; the embedded demo when omitted.
    pub module: Option<PathBuf>,
    /// The exported functions to call, comma separated (default: the demo's
    /// `main,explode,trap`, else `main`). Parameters get zeros.
    #[arg(long)]
    pub invoke: Option<String>,
    /// Also save the kernel's post-mortem dump (its COM2 output) to FILE.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Boot this kernel ELF instead of building tools/kernel.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Starts the kernel's gdb stub (on COM3) and waits for gdb at boot, on
    /// `tcp:HOST:PORT` (port 0: any; the address is printed) or `pty` (its path is
    /// printed): `gdb -ex 'target remote ADDRESS'`. Raise `--timeout` for long sessions.
    #[arg(long, value_name = "tcp:HOST:PORT|pty")]
    pub gdb: Option<String>,
    /// Seconds before QEMU is stopped (the boot takes well under one).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// Runs `clew qemu`; returns the exit status.
pub fn run(args: &QemuArgs, out: &mut dyn Write) -> i32 {
    let source = match &args.module {
        Some(p) => match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(out, "clew qemu: reading {}: {e}", p.display());
                return 2;
            }
        },
        None => DEMO.as_bytes().to_vec(),
    };
    let cwasm = match precompile(&source) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "clew qemu: compiling the module: {e:#}");
            return 2;
        }
    };
    let invoke = match (&args.invoke, &args.module) {
        (Some(i), _) => i.clone(),
        (None, None) => DEMO_EXPORTS.to_owned(),
        (None, Some(_)) => "main".to_owned(),
    };
    if invoke.is_empty() || invoke.contains(char::is_whitespace) {
        let _ = writeln!(out, "clew qemu: bad --invoke {invoke:?}");
        return 2;
    }
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
    let dir = std::env::temp_dir().join(format!("clew-qemu-{}", std::process::id()));
    let cwasm_file = dir.join("module.cwasm");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&cwasm_file, &cwasm))
    {
        let _ = writeln!(out, "clew qemu: writing {}: {e}", cwasm_file.display());
        return 2;
    }
    let wasm = Wasm {
        cwasm: &cwasm_file,
        invoke: &invoke,
    };
    let dump_file = dir.join("dump.bin");
    let gdb = match args
        .gdb
        .as_deref()
        .map(|spec| crate::qemu_gdb::GdbLink::new(spec, &dir))
    {
        None => None,
        Some(Ok(link)) => {
            let _ = writeln!(
                out,
                "clew qemu: gdb: the kernel waits for gdb at {} (gdb -ex 'target remote {0}')",
                link.address()
            );
            let _ = out.flush();
            Some(link)
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "clew qemu: {e:#}");
            let _ = std::fs::remove_dir_all(&dir);
            return 2;
        }
    };
    let socket = gdb.as_ref().map(|g| g.socket.clone());
    if let Some(link) = gdb {
        // `CLEW_QEMU_GDB_FILES=target`: the kernel serves its ELF file over the UART too
        // (tests and measurements of that path).
        let from_target = std::env::var("CLEW_QEMU_GDB_FILES").is_ok_and(|v| v == "target");
        link.start(std::fs::read(&kernel).ok().filter(|_| !from_target));
    }
    let status = boot(
        &kernel,
        Some(&wasm),
        Some(&dump_file),
        socket.as_deref(),
        args.timeout,
        out,
    );
    let dumped = std::fs::read(&dump_file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(path) = &args.dump
        && let Err(e) = std::fs::write(path, &dumped)
    {
        let _ = writeln!(
            out,
            "clew qemu: writing the dump to {}: {e}",
            path.display()
        );
        return 2;
    }
    if !dumped.is_empty()
        && let Err(e) = report_dump(&dumped, &kernel, out)
    {
        let _ = writeln!(out, "clew qemu: the dump: {e:#}");
    }
    if let Some(path) = &args.dump
        && !dumped.is_empty()
    {
        // The dump names the kernel by its ELF name only: point `clew decode` at it.
        let _ = writeln!(
            out,
            "clew qemu: dump saved; re-unwind it on this host with: clew decode {} --search {}",
            path.display(),
            kernel.parent().unwrap_or(Path::new(".")).display()
        );
    }
    match status {
        Ok(Boot {
            status: 0,
            reported,
        }) if reported && args.module.is_some() => 1,
        Ok(b) => b.status,
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

/// Precompiles a module (`.wat` text or `.wasm` binary) for the kernel's Wasmtime: target
/// `x86_64-unknown-none`, SSE3–SSE4.2 (the kernel checks them with `cpuid`; QEMU's
/// `-cpu max` has them), and the tunables of the kernel's engine (tools/kernel/src/wasm):
/// no virtual memory (no reservation, no guard pages, no growth reservation, no
/// copy-on-write memory images) and explicit bounds and trap checks instead of signals;
/// no GC proposals (the kernel's Wasmtime has no `gc` feature).
/// `Module::deserialize` in the kernel refuses a module whose settings differ.
pub fn precompile(source: &[u8]) -> Result<Vec<u8>> {
    let mut config = wasmtime::Config::new();
    config
        .target(KERNEL_TARGET)
        .map_err(crate::jit::wasmtime::wasmtime_error)?
        .memory_reservation(0)
        .memory_guard_size(0)
        .memory_reservation_for_growth(0)
        .memory_init_cow(false)
        .signals_based_traps(false)
        // The kernel's Wasmtime is built without the `gc` feature.
        .wasm_gc(false)
        .wasm_function_references(false)
        .wasm_exceptions(false)
        .wasm_stack_switching(false)
        .gc_support(false);
    for flag in ["has_sse3", "has_ssse3", "has_sse41", "has_sse42"] {
        // SAFETY: the kernel's engine checks these against `cpuid` before running code.
        unsafe { config.cranelift_flag_enable(flag) };
    }
    let engine = wasmtime::Engine::new(&config).map_err(crate::jit::wasmtime::wasmtime_error)?;
    engine
        .precompile_module(source)
        .map_err(crate::jit::wasmtime::wasmtime_error)
}

/// A precompiled module for the kernel to run, and the exports to call.
pub struct Wasm<'a> {
    pub cwasm: &'a Path,
    pub invoke: &'a str,
}

/// How a boot ended.
pub struct Boot {
    /// `clew qemu`'s exit status.
    pub status: i32,
    /// Whether the kernel reported a wasm trap or a caught panic.
    pub reported: bool,
}

/// The QEMU command line booting `kernel`: PVH (`-kernel` with an ELF that has a
/// `XEN_ELFNOTE_PHYS32_ENTRY` note), COM1 on stdout, the debug-exit device, no reboot
/// on a triple fault, and the kernel's ELF file loaded raw at [`BLOBS_AT`] for its
/// symbolizer (its place on the command line).
pub fn qemu_command(
    kernel: &Path,
    wasm: Option<&Wasm<'_>>,
    dump: Option<&Path>,
    gdb: Option<&Path>,
    timeout: u64,
) -> Result<Command> {
    let elf_len = std::fs::metadata(kernel)
        .with_context(|| format!("reading {}", kernel.display()))?
        .len();
    let mut end = BLOBS_AT + elf_len;
    let mut append = format!("clew.elf={BLOBS_AT:#x},{elf_len}");
    let mut loaders = vec![loader(kernel, BLOBS_AT)?];
    if let Some(w) = wasm {
        let len = std::fs::metadata(w.cwasm)
            .with_context(|| format!("reading {}", w.cwasm.display()))?
            .len();
        let at = end.next_multiple_of(2 << 20);
        loaders.push(loader(w.cwasm, at)?);
        append += &format!(" clew.cwasm={at:#x},{len} clew.invoke={}", w.invoke);
        end = at + len;
    }
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
        .arg(kernel);
    if let Some(d) = dump {
        // The second -serial is COM2, where the kernel writes its post-mortem dump.
        cmd.arg("-serial").arg(format!("file:{}", d.display()));
    }
    if let Some(socket) = gdb {
        // COM3, the gdb stub's line (COM2 must exist before it: QEMU numbers `-serial`s).
        if dump.is_none() {
            cmd.args(["-serial", "null"]);
        }
        cmd.arg("-serial").arg(format!("unix:{}", socket.display()));
        append += " clew.gdb=com3";
    }
    for l in loaders {
        cmd.arg("-device").arg(l);
    }
    cmd.arg("-append").arg(append);
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
pub fn boot(
    kernel: &Path,
    wasm: Option<&Wasm<'_>>,
    dump: Option<&Path>,
    gdb: Option<&Path>,
    timeout: u64,
    out: &mut dyn Write,
) -> Result<Boot> {
    let mut child = qemu_command(kernel, wasm, dump, gdb, timeout)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (Debian: apt-get install qemu-system-x86)")?;
    let (mut marker, mut reported) = (false, false);
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.context("reading the kernel's console")?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r');
        marker |= line == MARKER;
        reported |= line.starts_with("clew-kernel: wasm: ")
            && (line.contains(" trapped: ") || line.contains(": caught panic from "));
        writeln!(out, "{line}")?;
    }
    let status = child.wait().context("waiting for QEMU")?;
    let status = match status.code() {
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
    };
    Ok(Boot { status, reported })
}

/// Decodes the kernel's post-mortem dump and prints its cause and backtrace: kernel
/// frames named from the kernel's ELF file, JIT frames from the function names the dump
/// carries (the host has no file for them).
pub fn report_dump(bytes: &[u8], kernel: &Path, out: &mut dyn Write) -> Result<()> {
    let decoded = clew_tracer::decode::decode(bytes);
    let dump = &decoded.dump;
    writeln!(
        out,
        "clew qemu: post-mortem dump: {} bytes, {} records, {} problems",
        bytes.len(),
        dump.records,
        decoded.problems.len()
    )?;
    for p in &decoded.problems {
        writeln!(out, "clew qemu: dump problem: {p:?}")?;
    }
    if let Some(clew_tracer::decode::DumpCause::Panic {
        message,
        file,
        line,
        ..
    }) = &dump.cause
    {
        writeln!(
            out,
            "clew qemu: dump cause: panic {message:?} at {file}:{line}"
        )?;
    }
    let jit: Vec<_> = dump
        .modules
        .iter()
        .filter(|m| !m.symbols.is_empty())
        .collect();
    for m in &jit {
        writeln!(
            out,
            "clew qemu: dump module {:?}: text {:#x}..{:#x}, {} symbols, .eh_frame {}",
            m.name,
            m.text.start,
            m.text.end,
            m.symbols.len(),
            if m.eh_frame.is_some() {
                "included"
            } else {
                "absent"
            }
        )?;
    }
    let image = clew_symbolizer::host::open(kernel)
        .with_context(|| format!("opening {}", kernel.display()))?;
    let Some(task) = dump.tasks.first() else {
        bail!("the dump holds no task");
    };
    writeln!(
        out,
        "clew qemu: dump backtrace ({} frames, {} stack bytes):",
        task.backtrace.len(),
        task.stack.iter().map(|s| s.bytes.len()).sum::<usize>()
    )?;
    for (i, &pc) in task.backtrace.iter().enumerate() {
        let at = pc.saturating_sub(1);
        let name = match jit.iter().find(|m| m.text.contains(&at)) {
            Some(m) => m.symbol(at).map(|s| s.name.clone()),
            None => image.symbolize(at).ok().and_then(|f| {
                f.last()?
                    .function
                    .as_ref()
                    .map(|n| n.demangled().to_owned())
            }),
        };
        writeln!(
            out,
            "  #{i:<2} {pc:#018x} {}",
            name.as_deref().unwrap_or("??")
        )?;
    }
    Ok(())
}
