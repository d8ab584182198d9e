//! All user-facing printing goes through here: results to stdout, diagnostics to stderr, colour
//! decided once, quiet mode honoured, and a capture mode for tests.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the one place allowed to print

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// `--color` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// A buffer capturing one stream in tests.
pub type Captured = Arc<Mutex<Vec<u8>>>;

#[derive(Clone)]
enum Sink {
    Std,
    Capture(Arc<Mutex<Vec<u8>>>),
}

/// The output handle passed to every command.
#[derive(Clone)]
pub struct Output {
    stdout: Sink,
    stderr: Sink,
    color_stdout: bool,
    color_stderr: bool,
    quiet: bool,
}

impl Output {
    /// Real terminal output. Colour: `always`, `never`, or (auto) when the stream is a TTY and
    /// `NO_COLOR` is unset or empty.
    pub fn new(choice: ColorChoice, quiet: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Output {
            stdout: Sink::Std,
            stderr: Sink::Std,
            color_stdout: decide(std::io::stdout().is_terminal()),
            color_stderr: decide(std::io::stderr().is_terminal()),
            quiet,
        }
    }

    /// Capturing output for tests; colour off.
    pub fn capture() -> (Self, Captured, Captured) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let o = Output {
            stdout: Sink::Capture(out.clone()),
            stderr: Sink::Capture(err.clone()),
            color_stdout: false,
            color_stderr: false,
            quiet: false,
        };
        (o, out, err)
    }

    pub fn color_stdout(&self) -> bool {
        self.color_stdout
    }

    pub fn color_stderr(&self) -> bool {
        self.color_stderr
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    pub fn stdout_is_tty(&self) -> bool {
        matches!(self.stdout, Sink::Std) && std::io::stdout().is_terminal()
    }

    pub fn stderr_is_tty(&self) -> bool {
        matches!(self.stderr, Sink::Std) && std::io::stderr().is_terminal()
    }

    /// Write a result to stdout (never suppressed by `-q`: results are the point).
    pub fn out(&self, text: &str) {
        write_to(&self.stdout, false, text);
    }

    /// Write raw bytes to stdout.
    pub fn out_bytes(&self, bytes: &[u8]) {
        match &self.stdout {
            Sink::Std => {
                let mut h = std::io::stdout().lock();
                let _ = h.write_all(bytes);
                let _ = h.flush();
            }
            Sink::Capture(buf) => buf
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes),
        }
    }

    /// A status line on stderr, suppressed by `-q`.
    pub fn status(&self, text: &str) {
        if !self.quiet {
            write_to(&self.stderr, true, text);
        }
    }

    /// An error or diagnostic on stderr (never suppressed).
    pub fn error(&self, text: &str) {
        write_to(&self.stderr, true, text);
    }
}

fn write_to(sink: &Sink, is_err: bool, text: &str) {
    match sink {
        Sink::Std => {
            if is_err {
                let mut h = std::io::stderr().lock();
                let _ = h.write_all(text.as_bytes());
                if !text.ends_with('\n') {
                    let _ = h.write_all(b"\n");
                }
            } else {
                let mut h = std::io::stdout().lock();
                let _ = h.write_all(text.as_bytes());
                if !text.ends_with('\n') {
                    let _ = h.write_all(b"\n");
                }
                let _ = h.flush();
            }
        }
        Sink::Capture(buf) => {
            let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
            b.extend_from_slice(text.as_bytes());
            if !text.ends_with('\n') {
                b.push(b'\n');
            }
        }
    }
}

/// Progress of a long run on stderr: a bar (done / remaining / ETA) on a TTY, one plain line
/// per finished item otherwise; nothing with `-q`.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    out: Output,
    total: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Output {
    pub fn progress(&self, total: u64) -> Progress {
        let bar = (!self.quiet && self.stderr_is_tty()).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} done, {msg} (ETA {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            out: self.clone(),
            total,
            done: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Progress {
    /// One item finished; `line` describes it (shown as a plain line when there is no bar,
    /// and above the bar when `important`).
    pub fn item(&self, line: &str, important: bool) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        match &self.bar {
            Some(b) => {
                b.set_message(format!("{} remaining", self.total.saturating_sub(n)));
                b.inc(1);
                if important {
                    b.println(line);
                }
            }
            None => self.out.status(&format!("[{n}/{}] {line}", self.total)),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
