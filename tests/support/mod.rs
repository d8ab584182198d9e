//! Test harness shared by the directory integration suites: throwaway OpenLDAP `slapd` and
//! Samba AD DC servers, and generated directory data. Each suite uses part of it.
#![allow(dead_code)] // every suite compiles this module but uses only some of it

pub mod data;
pub mod samba;
pub mod slapd;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture file under `tests/fixtures/ldap/`.
pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures/ldap").join(rel)
}

/// The path of a required program, or a failing test that says how to install it: a missing
/// server must never turn into a silently skipped suite.
pub fn require_program(name: &str, package_hint: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed; this suite needs a real server. Install it with \
                 `apt-get install -y --no-install-recommends {package_hint}` (.ci/run does)."
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Poll `ready` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ready()
}

/// A tokio runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
