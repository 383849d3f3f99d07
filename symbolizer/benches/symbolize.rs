//! Symbolizer benchmarks, against the other symbolizers in the same run.
//!
//! One big binary and one address file (10,000 addresses inside its functions) for
//! everything:
//! - `batch/*`: clew's library (1 and 2 threads, from opening the file), gimli's
//!   `addr2line` library, and the CLIs on the same file as child processes (`clew
//!   symbolize`, gimli's `addr2line`, `llvm-symbolizer`, binutils `addr2line`), all
//!   with inlined frames and demangling.
//! - `cold/*`: one address, from a fresh start.
//!
//! ```sh
//! cargo build --release -p clew        # the `clew symbolize` measured
//! CLEW_BENCH_BINARY=target/debug/clew cargo bench -p clew-symbolizer --bench symbolize
//! ```
//! Environment: `CLEW_BENCH_BINARY` (default `target/debug/clew`), `CLEW_BENCH_ADDRS`
//! (default 10000), `CLEW_BENCH_CLEW` (default `target/release/clew`),
//! `CLEW_BENCH_GIMLI_ADDR2LINE` (gimli's CLI, `cargo install addr2line --features bin`;
//! default `addr2line-gimli` on the PATH), `CLEW_BENCH_BINUTILS_ADDR2LINE` (default
//! `/usr/bin/addr2line`, checked to be GNU's). Tools that are missing are skipped.
//! The address files stay in `target/symbolizer-bench/` for peak-memory runs with
//! `/usr/bin/time -v` (BENCHMARKS.md).

use std::borrow::Cow;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map_or(default, PathBuf::from)
}

/// `n` addresses inside the sized code symbols of `path` (deterministic).
fn addresses(path: &Path, n: usize) -> Vec<u64> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut funcs: Vec<(u64, u64)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter(|s| {
            s.section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|sec| sec.kind() == SectionKind::Text)
        })
        .map(|s| (s.address(), s.size()))
        .collect();
    funcs.sort_unstable();
    funcs.dedup();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let (a, s) = funcs[(next() % funcs.len() as u64) as usize];
            a + next() % s
        })
        .collect()
}

/// Whether `cmd` runs, and prints `expect` (if given) for `arg`: gimli's CLI is also
/// called `addr2line`, so binutils' is recognized by its `--version`.
fn runs(cmd: &Path, arg: &str, expect: Option<&str>) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && expect.is_none_or(|e| String::from_utf8_lossy(&o.stdout).contains(e))
        })
}

/// A CLI run: the command, fed `input` on stdin, its output discarded.
fn spawn(cmd: &Path, args: &[Cow<'_, str>], input: &Path) {
    let status = Command::new(cmd)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", cmd.display());
}

fn gimli_addr2line_lib(path: &Path, addrs: &[u64]) -> usize {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let dwarf = gimli::Dwarf::load(|id| -> Result<_, gimli::Error> {
        let data = file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(gimli::EndianSlice::new(data, gimli::RunTimeEndian::Little))
    })
    .unwrap();
    let ctx = addr2line::Context::from_dwarf(dwarf).unwrap();
    let mut n = 0;
    for &a in addrs {
        let mut frames = ctx.find_frames(a).skip_all_loads().unwrap();
        while let Ok(Some(f)) = frames.next() {
            if let Some(name) = f.function {
                n += name.demangle().map_or(0, |d| d.len());
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let binary = env_path("CLEW_BENCH_BINARY", workspace().join("target/debug/clew"));
    if !binary.exists() {
        eprintln!(
            "no benchmark binary at {} (set CLEW_BENCH_BINARY): skipping",
            binary.display()
        );
        return;
    }
    let n: usize = std::env::var("CLEW_BENCH_ADDRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let addrs = addresses(&binary, n);
    // Kept after the run: the same files feed `/usr/bin/time -v` runs (BENCHMARKS.md).
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or(workspace().join("target"), PathBuf::from)
        .join("symbolizer-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let addr_file = dir.join("addrs.txt");
    let text: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    std::fs::write(&addr_file, text).unwrap();
    let one_file = dir.join("one.txt");
    std::fs::write(&one_file, format!("{:#x}\n", addrs[0])).unwrap();
    let bin = binary.to_string_lossy();

    let clew = env_path("CLEW_BENCH_CLEW", workspace().join("target/release/clew"));
    let gimli_cli = env_path(
        "CLEW_BENCH_GIMLI_ADDR2LINE",
        PathBuf::from("addr2line-gimli"),
    );
    let llvm = PathBuf::from("llvm-symbolizer");
    let binutils = env_path(
        "CLEW_BENCH_BINUTILS_ADDR2LINE",
        PathBuf::from("/usr/bin/addr2line"),
    );
    let obj = format!("--obj={bin}");
    let clis: Vec<(&str, PathBuf, Vec<Cow<'_, str>>)> = vec![
        (
            "clew symbolize",
            clew.clone(),
            vec!["symbolize".into(), "-fiC".into(), "-e".into(), bin.clone()],
        ),
        (
            "gimli addr2line",
            gimli_cli.clone(),
            vec!["-fiC".into(), "-e".into(), bin.clone()],
        ),
        (
            "llvm-symbolizer",
            llvm.clone(),
            vec![obj.as_str().into(), "-fiC".into()],
        ),
        (
            "binutils addr2line",
            binutils.clone(),
            vec!["-fiC".into(), "-e".into(), bin.clone()],
        ),
    ];
    let available: Vec<_> = clis
        .into_iter()
        .filter(|(name, cmd, _)| {
            let ok = match *name {
                "clew symbolize" => runs(cmd, "--help", None),
                "binutils addr2line" => runs(cmd, "--version", Some("GNU addr2line")),
                _ => runs(cmd, "--version", None),
            };
            if !ok {
                eprintln!("{name} ({}) not found: skipped", cmd.display());
            }
            ok
        })
        .collect();

    let mut g = c.benchmark_group("batch");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for threads in [1, 2] {
        g.bench_function(format!("clew library, {threads} thread(s)"), |b| {
            b.iter(|| {
                let image = clew_symbolizer::host::open(&binary).unwrap();
                let r = clew_symbolizer::host::parallel::map(&addrs, threads, |a| {
                    image.symbolize(a).map(|f| {
                        f.iter()
                            .filter_map(|f| f.function.as_ref())
                            .map(|n| n.demangled().len())
                            .sum::<usize>()
                    })
                });
                black_box(r)
            })
        });
    }
    g.bench_function("gimli addr2line library", |b| {
        b.iter(|| black_box(gimli_addr2line_lib(&binary, &addrs)))
    });
    for (name, cmd, args) in &available {
        if *name == "binutils addr2line" && n > 2000 {
            // Seconds per run: a few samples are enough.
            g.sample_size(10).measurement_time(Duration::from_secs(60));
        }
        g.bench_function(format!("{name} (process)"), |b| {
            b.iter(|| spawn(cmd, args, &addr_file))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("cold");
    g.sample_size(20);
    g.bench_function("clew library", |b| {
        b.iter(|| {
            let image = clew_symbolizer::host::open(&binary).unwrap();
            black_box(image.symbolize(addrs[0]).unwrap())
        })
    });
    for (name, cmd, args) in &available {
        if *name == "binutils addr2line" {
            continue;
        }
        g.bench_function(format!("{name} (process)"), |b| {
            b.iter(|| spawn(cmd, args, &one_file))
        });
    }
    g.finish();
    eprintln!(
        "addresses: {} ({n}), one address: {}",
        addr_file.display(),
        one_file.display()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
