//! Progress on stderr for work that can take more than a second (compiling a large wasm
//! module, symbolizing many addresses of a big ELF file).
//!
//! Drawn only when stderr is a terminal, and only once the work has lasted
//! [`delay`]: quick runs never flash a bar, and pipes and files never see one (so a
//! script reading stderr gets exactly the messages clew prints). `indicatif` draws and
//! clears it; the bar is removed when the [`Progress`] is dropped.

use std::io::IsTerminal as _;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before its progress is drawn: 1 s, or `CLEW_PROGRESS_DELAY_MS`
/// (0 draws at once; the tests use it to see the bar of quick work on a terminal).
pub fn delay() -> Duration {
    std::env::var("CLEW_PROGRESS_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// A spinner or bar on stderr, shown after [`delay`] if stderr is a terminal.
pub struct Progress {
    bar: ProgressBar,
    /// Set (and signalled) when the work is done, so the reveal thread ends early.
    done: Arc<(Mutex<bool>, Condvar)>,
    reveal: Option<JoinHandle<()>>,
}

impl Progress {
    /// A spinner with a message, for work of unknown length.
    pub fn spinner(message: impl Into<String>) -> Progress {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template"),
        );
        bar.set_message(message.into());
        Progress::start(bar)
    }

    /// A bar counting `len` steps, with a message.
    pub fn bar(len: u64, message: impl Into<String>) -> Progress {
        let bar = ProgressBar::hidden();
        bar.set_length(len);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} [{elapsed}]")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(message.into());
        Progress::start(bar)
    }

    fn start(bar: ProgressBar) -> Progress {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let terminal = std::io::stderr().is_terminal();
        if terminal && delay().is_zero() {
            // Drawn before the work starts, however short it is.
            show(&bar);
            return Progress {
                bar,
                done,
                reveal: None,
            };
        }
        let reveal = terminal.then(|| {
            let (bar, done) = (bar.clone(), done.clone());
            std::thread::spawn(move || {
                let (lock, cv) = &*done;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = cv
                    .wait_timeout_while(guard, delay(), |done| !*done)
                    .unwrap_or_else(|e| e.into_inner());
                if !*guard {
                    show(&bar);
                }
            })
        });
        Progress { bar, done, reveal }
    }

    /// Advances a bar by `n` steps (callable from several threads).
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
}

fn show(bar: &ProgressBar) {
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.tick();
    bar.enable_steady_tick(Duration::from_millis(100));
}

impl Drop for Progress {
    fn drop(&mut self) {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.reveal.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}
