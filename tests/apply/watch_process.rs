//! A `watch` process for the watch suites: stderr collected line by line, the health
//! endpoint's address, `/healthz` and `/metrics` readers, SIGTERM.
#![allow(dead_code)] // each suite uses a part

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::command;

/// A running `watch`, its stderr collected line by line; killed on drop.
pub struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub health: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    /// `watch --interval INTERVAL --listen 127.0.0.1:0` with `env`; returns once the health
    /// endpoint is up.
    pub fn start(cfg: &Path, state: &Path, interval: &str, env: &[(&str, &str)]) -> Watch {
        let mut cmd = command(
            cfg,
            state,
            &["watch", "--interval", interval, "--listen", "127.0.0.1:0"],
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut w = Watch {
            child,
            lines,
            health: String::new(),
        };
        let line = w.wait_line("health and metrics on http://", Duration::from_secs(30));
        w.health = line.split("http://").nth(1).unwrap().trim().to_string();
        w
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the watch log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.health).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.health
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    pub fn healthz(&self) -> (u16, Value) {
        let (status, body) = self.get("/healthz");
        (status, serde_json::from_str(&body).unwrap())
    }

    /// A metric's value, summed over label sets (`name` may end in `{` to match labels).
    pub fn metric(&self, name: &str) -> u64 {
        let (_, m) = self.get("/metrics");
        m.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// `carbonite_sync_passes_total` summed over results.
    pub fn passes(&self) -> u64 {
        let (_, m) = self.get("/metrics");
        m.lines()
            .filter(|l| l.starts_with("carbonite_sync_passes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn wait_passes(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.passes() < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} passes:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "watch did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Poll `ok` until it holds or `timeout` passes (then panic naming `what`).
pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
