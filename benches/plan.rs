//! End-to-end `plan` benchmark: `cargo bench --bench plan`.
//!
//! 100k AD-style users in a throwaway slapd and 100k accounts in the Carbonite emulator (a
//! separate process, limits off). Times, in the same run (medians of 5 runs):
//! - the physical limit: `ldapsearch -E pr=1000/noprompt` of the mapping's entries and `curl`
//!   fetching the token plus every page of 500 accounts, run concurrently (as plan reads);
//! - `carbonite-sync plan --format json` of the same config (fresh state dir each time).
//!
//! One untimed warm-up run of each, then 5 alternating runs; medians compared.
//!
//! Target (issue 6): plan within 1.2x of the limit. Environment: BENCH_USERS (default 100000).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::data::{GIVEN_NAMES, SURNAMES, UAC};
use support::slapd::{self, Slapd};

const COMPANY: &str = "0f8b6c1e-4d2a-4c3b-9e5f-1a2b3c4d5e6f";
const GROUP: &str = "5a1d2e3f-0000-4000-8000-000000000001";
const FILTER: &str = "(&(objectClass=user)(employeeID=*))";

struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Fields after the command name of /proc/<pid>/stat (utime is [11], stime [12], cutime [13],
/// cstime [14]), in seconds at 100 ticks per second.
fn stat_fields(pid: &str) -> Vec<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rfind(')').map_or("", |i| &s[i + 2..]);
    after
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(0.0) / 100.0)
        .collect()
}

/// CPU seconds so far of the servers and of this process's waited-for children (the commands
/// each side runs).
#[derive(Clone, Copy)]
struct Cpu {
    commands: f64,
    slapd: f64,
    emulator: f64,
}

impl Cpu {
    fn now(slapd: u32, emulator: u32) -> Cpu {
        let own = stat_fields("self");
        let of = |pid: u32| {
            let f = stat_fields(&pid.to_string());
            f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)
        };
        Cpu {
            commands: own.get(13).unwrap_or(&0.0) + own.get(14).unwrap_or(&0.0),
            slapd: of(slapd),
            emulator: of(emulator),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            commands: self.commands - before.commands,
            slapd: self.slapd - before.slapd,
            emulator: self.emulator - before.emulator,
        }
    }
}

fn main() {
    let n: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let bin = env!("CARGO_BIN_EXE_carbonite-sync");
    let dir = tempfile::tempdir().expect("temp dir");

    // Directory.
    let t = Instant::now();
    let ldif = dir.path().join("users.ldif");
    std::fs::write(&ldif, support::data::users(0..n, slapd::STAFF)).expect("write LDIF");
    let server = Slapd::start_with_files(&[ldif]);
    println!(
        "== {n} users: slapd loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Accounts: every user with an employeeID has one; 1% drift in FirstName.
    let users: Vec<serde_json::Value> = (0..n)
        .filter(|i| !i.is_multiple_of(13))
        .map(|i| {
            let disabled = UAC[(i / 2) % UAC.len()] & 2 != 0;
            let given = GIVEN_NAMES[(i / 3) % GIVEN_NAMES.len()];
            serde_json::json!({
                "UserId": format!("00000000-0000-4000-8000-{i:012}"),
                "Email": format!("user{i}@corp.example"),
                "FirstName": if i % 100 == 1 { "Old" } else { given },
                "LastName": SURNAMES[i % SURNAMES.len()],
                "CompanyId": COMPANY,
                "UserGroupId": GROUP,
                "UserCustom1": format!("E{:05}", i * 7 % 100_000),
                "Status": if disabled { "Suspended" } else { "Active" },
            })
        })
        .collect();
    let accounts = users.len();
    let seed = serde_json::json!({
        "Companies": [{"CompanyId": COMPANY, "CompanyName": "Corp"}],
        "UserGroups": [{"UserGroupId": GROUP, "Name": "Staff", "CompanyId": COMPANY}],
        "Users": users,
    });
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, serde_json::to_vec(&seed).expect("seed JSON")).expect("write seed");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let emulator = Emulator(
        Command::new(bin)
            .args([
                "emulator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--rate-limits",
                "none",
                "--seed",
            ])
            .arg(&seed_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "emulator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The config: the same mapping as tests/plan_slapd.rs; limits raised (the emulator's are off).
    let cfg = dir.path().join("config");
    std::fs::create_dir(&cfg).expect("config dir");
    std::fs::write(
        cfg.join("integration.yaml"),
        format!(
            r#"apiVersion: carbonite-sync/v1
kind: Integration
metadata: {{ name: bench }}
spec:
  directory:
    flavor: active-directory
    ldap: {{ url: "{url}", bindDn: "{bind}", password: {{ env: BENCH_BIND_PW }}, baseDn: "{suffix}" }}
  carbonite:
    baseUrl: {base}
    auth: {{ apiKey: {{ email: bench@corp.example, secret: {{ env: BENCH_API_KEY }} }} }}
    rateLimits: {{ perRoute: 1000000/1h, userCreates: 1000000/1h }}
---
apiVersion: carbonite-sync/v1
kind: Mapping
metadata: {{ name: staff }}
spec:
  source: {{ baseDn: "{staff}", filter: "{FILTER}" }}
  primaryKey: {{ ldap: employeeID, carbonite: UserCustom1 }}
  attributes:
    Email: {{ value: "{{{{ mail | lower }}}}", compare: caseInsensitive }}
    FirstName: "{{{{ givenName }}}}"
    LastName: "{{{{ sn }}}}"
    CompanyId: {{ value: "{{{{ lookup('companies', 'Corp') }}}}", createOnly: true }}
    UserGroupId: "{{{{ lookup('userGroups', 'Staff') }}}}"
    Status: "{{{{ 'Suspended' if disabled else 'Active' }}}}"
"#,
            url = server.url(),
            bind = slapd::SVC_DN,
            suffix = slapd::SUFFIX,
            staff = slapd::STAFF,
        ),
    )
    .expect("write config");

    // The physical limit: ldapsearch and curl, concurrently.
    let pages = accounts.div_ceil(500);
    let (slapd_pid, emulator_pid) = (server.pid(), emulator.0.id());
    let cpu = || Cpu::now(slapd_pid, emulator_pid);
    let limit = || {
        let cpu_before = cpu();
        let started = Instant::now();
        let ldapsearch = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &server.url(),
                "-D",
                slapd::SVC_DN,
                "-w",
                slapd::SVC_PW,
            ])
            .args(["-b", slapd::STAFF, "-E", "pr=1000/noprompt", FILTER])
            .args([
                "department",
                "employeeID",
                "givenName",
                "mail",
                "objectGUID",
                "sn",
                "uSNChanged",
                "userAccountControl",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("ldapsearch");
        let token = Command::new("curl")
            .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json"])
            .args([
                "-d",
                r#"{"Email":"bench@corp.example","ApiKeySecret":"bench"}"#,
            ])
            .arg(format!("{base}/api/tokens/apikey"))
            .output()
            .expect("curl token");
        let token: serde_json::Value = serde_json::from_slice(&token.stdout).expect("token JSON");
        let token = token["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let curl = Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                "-H",
                &format!("Authorization: Bearer {token}"),
            ])
            .arg(format!(
                "{base}/api/users?pageNumber=[1-{pages}]&pageSize=500"
            ))
            .status()
            .expect("curl pages");
        assert!(curl.success(), "curl failed");
        let ls = ldapsearch.wait_with_output().expect("ldapsearch");
        assert!(ls.status.success(), "ldapsearch failed");
        (started.elapsed(), cpu().since(cpu_before))
    };
    let plan = || {
        let state = tempfile::tempdir().expect("state dir");
        let cpu_before = cpu();
        let started = Instant::now();
        let out = Command::new(bin)
            .arg("-C")
            .arg(&cfg)
            .arg("--state-dir")
            .arg(state.path())
            .args(["plan", "--format", "json"])
            .env("BENCH_BIND_PW", slapd::SVC_PW)
            .env("BENCH_API_KEY", "bench")
            .output()
            .expect("plan");
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let used = cpu().since(cpu_before);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
        (took, used, v["summary"].clone())
    };
    let mut limits = Vec::new();
    let mut plans = Vec::new();
    let (mut limit_cpu, mut plan_cpu) = (Vec::new(), Vec::new());
    let mut summary = serde_json::Value::Null;
    // One untimed run of each warms slapd's caches and the page cache; then 5 alternating runs.
    let _ = limit();
    let _ = plan();
    for _ in 0..5 {
        let (t, c) = limit();
        limits.push(t);
        limit_cpu.push(c);
        let (t, c, s) = plan();
        plans.push(t);
        plan_cpu.push(c);
        summary = s;
    }
    let fmt = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "   runs (s): limit [{}], plan [{}]",
        fmt(&limits),
        fmt(&plans)
    );
    let (l, p) = (median(limits), median(plans));
    println!("   plan summary: {summary}");
    println!(
        "   ldapsearch + curl ({pages} pages), concurrently: {:.2} s",
        l.as_secs_f64()
    );
    println!(
        "   carbonite-sync plan:                           {:.2} s",
        p.as_secs_f64()
    );
    println!(
        "   ratio: {:.2}x (target 1.2x)",
        p.as_secs_f64() / l.as_secs_f64()
    );
    // Both sides share the machine's cores with slapd and the emulator: the CPU each run costs
    // the whole machine bounds its wall time from below (CPU / cores).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let show = |name: &str, who: &str, v: &[Cpu]| {
        let pick = |f: fn(&Cpu) -> f64| median_f(v.iter().map(f).collect());
        let (c, sl, em) = (
            pick(|c| c.commands),
            pick(|c| c.slapd),
            pick(|c| c.emulator),
        );
        println!(
            "   CPU of a {name} run (medians): {who} {c:.2} s + slapd {sl:.2} s + emulator {em:.2} s \
             = {:.2} s -> at least {:.2} s of wall on {cores} cores",
            c + sl + em,
            (c + sl + em) / cores as f64
        );
    };
    show("limit", "ldapsearch + curl", &limit_cpu);
    show("plan", "carbonite-sync", &plan_cpu);
    // PLAN_BENCH_HOLD=SECS keeps the servers up for manual profiling of the same setup.
    if let Some(secs) = std::env::var("PLAN_BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        println!(
            "   holding: -C {} (BENCH_BIND_PW, BENCH_API_KEY=bench)",
            cfg.display()
        );
        std::thread::sleep(Duration::from_secs(secs));
    }
}
