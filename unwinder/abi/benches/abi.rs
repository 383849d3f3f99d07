//! The process's unwinder, three ways in the same run: the system libgcc_s (GCC 12 on
//! Debian 12), GCC 14's libgcc_s (`LD_LIBRARY_PATH`), and clew (`LD_PRELOAD` of
//! `libclew_unwind.so`).
//!
//! The measured code is an ordinary C++ program, `benches/cpp/abi_bench.cpp`, compiled
//! here with g++ and run as three child processes, one per unwinder: the same binary,
//! whose `_Unwind_*` references the dynamic linker binds to the unwinder under test.
//! Each child times its own loop (its thread's CPU time, `CLOCK_THREAD_CPUTIME_ID`,
//! around `iters` operations: time spent descheduled on a busy machine is not counted)
//! and criterion drives it through `iter_custom`, so the pipe between them is not
//! measured.
//! Why a child rather than this binary run three times: clew registers the objects loaded
//! at startup, and a C++ library `dlopen`ed by this Rust binary (with the libstdc++ it
//! pulls in) would be found by clew through `dl_iterate_phdr` on every lookup, not the
//! case being measured; child processes also give every group a fresh process (100k
//! registered sections would otherwise slow libgcc 12's every later lookup) and put the
//! three unwinders side by side in one criterion report.
//!
//! - `throw_catch_plain/<unwinder>/<d>`: a C++ `throw 7` caught by `catch (int)` through
//!   `d` non-inlined frames without destructors (the personality finds nothing to do in
//!   them); `throw_catch_dtors`: each of the `d` frames has a local with a destructor,
//!   so phase 2 lands in every frame and `_Unwind_Resume`s from it.
//! - `find_fde_100k/<unwinder>`: `_Unwind_Find_FDE(pc, &bases)` on random PCs of 100k
//!   sections registered with `__register_frame` (one CIE + one FDE each, covering 64
//!   bytes of a distinct page of a `PROT_NONE` reservation), registered from the highest
//!   address down as successive mmaps place JIT code. The registration itself and the
//!   first lookup after it (where libgcc 12 sorts what was registered) are printed.
//! - `register_100k/<unwinder>`: registering the 100k sections into an empty registry
//!   (`__register_frame` each); deregistering them afterwards is timed apart and printed.
//! - `backtrace_64/<unwinder>`: repeated `_Unwind_Backtrace` of 64 frames of 64 distinct
//!   functions, a callback collecting `_Unwind_GetIP` and stopping after 64.
//!
//! Run: `CLEW_BENCH_LIBGCC14=$(../shared/tools/libgcc14) cargo bench -p clew-unwind
//! --bench abi` (without `CLEW_BENCH_LIBGCC14` the libgcc 14 rows are skipped;
//! `CLEW_UNWIND_SO` overrides the preloaded library, by default the `libclew_unwind.so`
//! cargo built next to this bench; `CLEW_BENCH_BASELINE=<another libclew_unwind.so>` adds
//! it as `clew-baseline`, for before/after comparisons). A summary table (the median of
//! the per-sample means, with ratios) is printed at the end. See BENCHMARKS.md.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

const SAMPLES: usize = 20;
const REGISTER_SAMPLES: usize = 10;
const DEPTHS: [u32; 3] = [1, 16, 64];
const MODULES: u64 = 100_000;
const BT_FRAMES: u64 = 64;

/// One way of running the child: the environment that picks its unwinder and the object
/// every `_Unwind_*` symbol must then resolve to.
struct Unwinder {
    label: String,
    env: Vec<(&'static str, String)>,
    /// The path of the object that must define the unwinding symbols (`None`: the system
    /// libgcc_s, whatever its path).
    expect: Option<PathBuf>,
}

const SYMBOLS: [&str; 6] = [
    "_Unwind_RaiseException",
    "_Unwind_Resume",
    "_Unwind_Backtrace",
    "_Unwind_Find_FDE",
    "__register_frame",
    "__deregister_frame",
];

/// A running child: commands in, one answer line out.
struct Worker {
    label: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    info: BTreeMap<String, String>,
}

impl Worker {
    fn spawn(exe: &Path, u: &Unwinder) -> Worker {
        let mut child = Command::new(exe)
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH")
            .envs(u.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running the C++ bench program");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut info = BTreeMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("{}: the bench program exited at startup", u.label);
            }
            let l = line.trim_end();
            if l == "ready" {
                break;
            }
            let mut parts = l.splitn(3, ' ');
            if let (Some("info"), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) {
                info.insert(k.to_owned(), v.to_owned());
            }
        }
        let w = Worker {
            label: u.label.clone(),
            child,
            stdin,
            stdout,
            info,
        };
        w.check(u);
        w
    }

    /// Every unwinding symbol resolves to the expected object.
    fn check(&self, u: &Unwinder) {
        let libgcc = &self.info["libgcc_s"];
        for s in SYMBOLS {
            let got = Path::new(&self.info[s]);
            let ok = match &u.expect {
                Some(p) => got.canonicalize().ok() == p.canonicalize().ok(),
                None => got == Path::new(libgcc),
            };
            assert!(ok, "{}: {s} resolves to {}", u.label, got.display());
        }
    }

    /// Sends one command; returns the numbers of its answer.
    fn ask(&mut self, cmd: &str) -> Vec<u64> {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        match line.trim_end().strip_prefix("ok ") {
            Some(nums) => nums.split(' ').map(|n| n.parse().unwrap()).collect(),
            None => panic!("{}: {cmd}: {}", self.label, line.trim_end()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// Compiles the C++ program next to this bench.
fn build_program() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/cpp/abi_bench.cpp");
    let exe = std::env::current_exe().unwrap();
    let out = exe.with_file_name("clew-abi-bench-cpp");
    let o = Command::new("g++")
        .args(["-O2", "-g"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .output()
        .expect("g++ must be installed (Debian: g++)");
    assert!(
        o.status.success(),
        "g++ {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// `libclew_unwind.so`: `$CLEW_UNWIND_SO`, else the one cargo built with this bench.
fn clew_library() -> PathBuf {
    if let Some(p) = std::env::var_os("CLEW_UNWIND_SO") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    [
        dir.join("libclew_unwind.so"),
        dir.join("../libclew_unwind.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libclew_unwind.so not built (cargo build --release -p clew-unwind)")
}

/// The unwinders to compare, each checked by a first run of the child (which also reports
/// which unwinder it got).
fn unwinders(exe: &Path) -> Vec<Unwinder> {
    let mut list = vec![Unwinder {
        label: String::from("system"),
        env: vec![],
        expect: None,
    }];
    match std::env::var("CLEW_BENCH_LIBGCC14") {
        Ok(dir) => list.push(Unwinder {
            label: String::from("libgcc14"),
            expect: Some(Path::new(&dir).join("libgcc_s.so.1")),
            env: vec![("LD_LIBRARY_PATH", dir)],
        }),
        Err(_) => eprintln!(
            "CLEW_BENCH_LIBGCC14 is not set (a directory with GCC 14's libgcc_s.so.1): \
             skipping libgcc 14"
        ),
    }
    // Another build of the library, e.g. before a change, measured as `clew-baseline`.
    if let Some(p) = std::env::var_os("CLEW_BENCH_BASELINE") {
        list.push(Unwinder {
            label: String::from("clew-baseline"),
            env: vec![("LD_PRELOAD", PathBuf::from(&p).display().to_string())],
            expect: Some(PathBuf::from(p)),
        });
    }
    let clew = clew_library();
    list.push(Unwinder {
        label: String::from("clew"),
        env: vec![("LD_PRELOAD", clew.display().to_string())],
        expect: Some(clew),
    });
    for u in &mut list {
        let w = Worker::spawn(exe, u);
        if u.label == "system" {
            u.label = format!("libgcc{}", w.info["libgcc_version"]);
            if u.label == "libgcc14" {
                u.label = String::from("libgcc14-system");
            }
        }
        eprintln!(
            "{:>13}: _Unwind_RaiseException etc. from {} (libgcc_s {}, GCC {})",
            u.label, w.info["_Unwind_RaiseException"], w.info["libgcc_s"], w.info["libgcc_version"]
        );
    }
    list
}

/// Every measurement sample, per (group, parameter) and unwinder: (iterations, ns).
type Samples = BTreeMap<(String, String), BTreeMap<String, Vec<(u64, u64)>>>;

#[derive(Default)]
struct Results {
    samples: RefCell<Samples>,
    notes: RefCell<Vec<String>>,
}

impl Results {
    fn record(&self, group: &str, param: &str, unwinder: &str, iters: u64, ns: u64) {
        self.samples
            .borrow_mut()
            .entry((group.to_owned(), param.to_owned()))
            .or_default()
            .entry(unwinder.to_owned())
            .or_default()
            .push((iters, ns));
    }

    /// The median of the per-sample means over the last `n` calls (criterion's samples;
    /// the calls before them are its warm-up).
    fn median(samples: &[(u64, u64)], n: usize) -> f64 {
        let mut means: Vec<f64> = samples[samples.len().saturating_sub(n)..]
            .iter()
            .map(|&(i, ns)| ns as f64 / i.max(1) as f64)
            .collect();
        means.sort_by(f64::total_cmp);
        means[means.len() / 2]
    }

    fn print(&self, unwinders: &[Unwinder]) {
        let labels: Vec<&str> = unwinders.iter().map(|u| u.label.as_str()).collect();
        println!("\n## summary (median of per-sample means; clew vs X: X's time / clew's)\n");
        print!("| measurement |");
        for l in &labels {
            print!(" {l} |");
        }
        // Speed-ups of clew: how many times longer the other one takes.
        let against: Vec<&str> = ["libgcc14", "libgcc12", "clew-baseline"]
            .into_iter()
            .filter(|l| labels.contains(l))
            .collect();
        for l in &against {
            print!(" clew vs {l} |");
        }
        println!();
        println!("|---|{}", "---|".repeat(labels.len() + against.len()));
        for ((group, param), by) in self.samples.borrow().iter() {
            let n = if group.starts_with("register") {
                REGISTER_SAMPLES
            } else {
                SAMPLES
            };
            let per = |l: &str| by.get(l).map(|s| Self::median(s, n));
            let name = if param.is_empty() {
                group.clone()
            } else {
                format!("{group}/{param}")
            };
            print!("| {name} |");
            for l in &labels {
                match per(l) {
                    Some(ns) => print!(" {} |", fmt_ns(ns)),
                    None => print!(" - |"),
                }
            }
            let ratio = |l: &str| match (per(l), per("clew")) {
                (Some(a), Some(c)) => format!("{:.2}x", a / c),
                _ => String::from("-"),
            };
            for l in &against {
                print!(" {} |", ratio(l));
            }
            println!();
        }
        if self
            .samples
            .borrow()
            .keys()
            .any(|(g, _)| g == "backtrace_64")
        {
            println!("\n(backtrace_64 per frame: the time above / {BT_FRAMES})");
        }
        for n in self.notes.borrow().iter() {
            println!("{n}");
        }
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// One worker per unwinder, started when first used.
fn workers(n: usize) -> Vec<Option<Worker>> {
    (0..n).map(|_| None).collect()
}

fn worker<'a>(slot: &'a mut Option<Worker>, exe: &Path, u: &Unwinder) -> &'a mut Worker {
    slot.get_or_insert_with(|| Worker::spawn(exe, u))
}

fn main() {
    let exe = build_program();
    let unwinders = unwinders(&exe);
    let results = Results::default();
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    for (group_name, dtors) in [("throw_catch_plain", 0), ("throw_catch_dtors", 1)] {
        let mut group = c.benchmark_group(group_name);
        let mut ws = workers(unwinders.len());
        for d in DEPTHS {
            for (u, slot) in unwinders.iter().zip(&mut ws) {
                group.bench_function(BenchmarkId::new(&u.label, d), |b| {
                    let w = worker(slot, &exe, u);
                    b.iter_custom(|iters| {
                        let ns = w.ask(&format!("throw {d} {dtors} {iters}"))[0];
                        results.record(group_name, &d.to_string(), &u.label, iters, ns);
                        Duration::from_nanos(ns)
                    })
                });
            }
        }
        group.finish();
    }

    {
        let mut group = c.benchmark_group("backtrace_64");
        group.throughput(Throughput::Elements(BT_FRAMES));
        let mut ws = workers(unwinders.len());
        for (u, slot) in unwinders.iter().zip(&mut ws) {
            group.bench_function(&u.label, |b| {
                let w = worker(slot, &exe, u);
                b.iter_custom(|iters| {
                    let ns = w.ask(&format!("backtrace {iters}"))[0];
                    results.record("backtrace_64", "", &u.label, iters, ns);
                    Duration::from_nanos(ns)
                })
            });
        }
        group.finish();
    }

    {
        let mut group = c.benchmark_group("find_fde_100k");
        let mut ws = workers(unwinders.len());
        for (u, slot) in unwinders.iter().zip(&mut ws) {
            group.bench_function(&u.label, |b| {
                let w = slot.get_or_insert_with(|| {
                    let mut w = Worker::spawn(&exe, u);
                    let r = w.ask(&format!("fde_setup {MODULES}"));
                    results.notes.borrow_mut().push(format!(
                        "find_fde_100k setup, {}: registering {MODULES} sections {} ({}/section), \
                         first lookup {}",
                        u.label,
                        fmt_ns(r[0] as f64),
                        fmt_ns(r[0] as f64 / MODULES as f64),
                        fmt_ns(r[1] as f64)
                    ));
                    w
                });
                b.iter_custom(|iters| {
                    let ns = w.ask(&format!("fde_lookup {iters}"))[0];
                    results.record("find_fde_100k", "", &u.label, iters, ns);
                    Duration::from_nanos(ns)
                })
            });
        }
        group.finish();
    }

    {
        let mut group = c.benchmark_group("register_100k");
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(REGISTER_SAMPLES);
        let mut ws = workers(unwinders.len());
        for (u, slot) in unwinders.iter().zip(&mut ws) {
            let mut dereg = Vec::new();
            group.bench_function(&u.label, |b| {
                let w = worker(slot, &exe, u);
                b.iter_custom(|iters| {
                    let r = w.ask(&format!("register {MODULES} {iters}"));
                    results.record("register_100k", "", &u.label, iters, r[0]);
                    dereg.push(r[1] as f64 / iters as f64);
                    Duration::from_nanos(r[0])
                })
            });
            if let Some(&d) = dereg.last() {
                results.notes.borrow_mut().push(format!(
                    "register_100k, {}: then deregistering the {MODULES} sections {} \
                     ({}/section)",
                    u.label,
                    fmt_ns(d),
                    fmt_ns(d / MODULES as f64)
                ));
            }
        }
        group.finish();
    }

    c.final_summary();
    results.print(&unwinders);
}
