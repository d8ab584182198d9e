//! The rate-limit ledger (SPEC §5, §10): every Carbonite call this state dir makes, per route
//! (METHOD + path template) and for user creates, in sliding windows ("at most N calls in any
//! interval of length W"), shared by every process that uses the state dir.
//!
//! # How a call is counted
//!
//! Each call is an entry `{id, at, until}`: `at` is when the slot was reserved, `until` the
//! latest moment the server can have admitted the call. At reservation `until` is
//! `at + hold` (the request timeout plus a margin: the call may still be in flight); when the
//! response arrives, [`Ledger::complete`] lowers it to the arrival time. A new call at `now` is
//! allowed when fewer than N entries have `until > now - W`.
//!
//! That rule never lets the server see more than N calls in a window, whatever the ordering of
//! processes and network delays: of any N+1 calls the server admitted within W, the one reserved
//! last counted the other N (each had `until` >= its admission, which lies within W of the last
//! call's admission, which is after its reservation), so it would have been refused. An entry
//! whose process died keeps its pessimistic `until`, which is safe.
//!
//! A 429 leaves its entry in place (the vendor may count refused calls) and records the
//! server's `Retry-After` as a block on the route, honoured by every process.
//!
//! Calls announced with [`Ledger::expect`] (a listing's remaining pages) are reserved together:
//! one write adds an entry for each of up to 32 of them (at most a quarter of the route's
//! limit, and only what the window admits), and the following reservations take those entries
//! without touching the file. An entry reserved ahead is used only within the hold's margin
//! beyond the request timeout (the `within` of `expect`), so a call made with it is still
//! answered or timed out before its `until`, and the rule above holds unchanged. Entries never
//! used are removed (no call was made with them) with the next write, when the announcement
//! ends, or on [`Ledger::flush`]; a process killed first leaves them counted, which is safe.
//!
//! # The file
//!
//! `<state>/ledger.json` (mode 0600), guarded by an exclusive `flock` on `<state>/ledger.lock`
//! held only while a slot is checked and appended; the JSON is rewritten through a temp file and
//! a rename, fsynced on reservations. A process keeps the file as it last read or wrote it and
//! parses it again only when its identity (inode, size, modification time) changed, i.e. when
//! another process wrote it. Completions ([`Ledger::complete`]) only lower `until`: they are
//! kept in memory (and counted by this process at once) and written with the next reservation,
//! or when the ledger is dropped; a completion that is never written leaves the pessimistic
//! `until`, which is safe. Tenants are keyed by `<base URL> <auth email>` (`-` for a
//! bearer token; `emulator:<state file>` for the in-process emulator), so a trial and a real
//! tenant never share budget:
//!
//! ```json
//! {"version": 2, "tenants": {"https://red-us.mysecuredatavault.com admin@corp.example": {
//!    "routes": {"GET /api/users": [{"id": 81985529216486895, "at": 1700000000000, "until": 1700000030000}]},
//!    "settled": {"GET /api/users": [[1699999964000, 185], [1699999999000, 2]]},
//!    "creates": [],
//!    "settled_creates": [[1699999930000, 40]],
//!    "blocked": {"POST /api/users": 1700000030000}}}}
//! ```
//! Times are milliseconds since the Unix epoch. `routes`/`creates` hold the calls whose `until`
//! is still ahead (in flight, or answered and not yet written); once `until` has passed a call
//! only counts, so it moves to `settled`: `[time, count]` with the time rounded up to the second
//! (to 1% of a window shorter than 100 s), so a burst of calls is one bucket whatever the
//! limits, and a call is never counted for less time than it should. Entries leave the file once
//! their window has passed. Version 1 files (no settled counts) are read and rewritten as 2.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::model::RateLimits;
use crate::config::rate::Rate;
use crate::state::{ensure_state_dir, private_options, write_atomic};

/// File name of the ledger inside the state dir.
pub const LEDGER_FILE: &str = "ledger.json";
/// File name of the ledger's lock file inside the state dir.
pub const LEDGER_LOCK_FILE: &str = "ledger.lock";
const FORMAT_VERSION: u32 = 2;
/// Older formats this build reads (version 1 had no settled counts).
const READS_VERSIONS: [u32; 2] = [1, 2];
/// Most slots one reservation takes ahead for announced calls ([`Ledger::expect`]).
const AHEAD_MAX: usize = 32;
/// Entries of *other* tenants (whose limits this process does not know) are dropped after this.
const FOREIGN_RETENTION: Duration = Duration::from_secs(31 * 24 * 3600);

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// `t` as milliseconds since the Unix epoch (0 before it).
pub fn to_millis(t: SystemTime) -> Millis {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch as a time.
pub fn from_millis(ms: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn duration_millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 (UTC, seconds) for messages.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------------
// The pure core: sliding windows over sorted `until` times.

/// Earliest time `>= now` at which a window holding `untils` (sorted ascending) admits one more
/// call under `rate`.
pub fn earliest_slot(untils: &[Millis], rate: Rate, now: Millis) -> Millis {
    let per = duration_millis(rate.per);
    let n = rate.count as usize;
    let first_live = untils.partition_point(|&u| u <= now.saturating_sub(per));
    let live = untils.len() - first_live;
    if live < n {
        now
    } else {
        // The slot frees when the entry `n` calls back leaves the window.
        untils[first_live + live - n].saturating_add(per).max(now)
    }
}

/// [`earliest_slot`] over runs `(until, how many)` sorted by time (the ledger's settled buckets
/// merged with its entries): O(runs), whatever the number of calls.
pub fn earliest_slot_runs(runs: &[(Millis, u64)], rate: Rate, now: Millis) -> Millis {
    let per = duration_millis(rate.per);
    let n = u64::from(rate.count);
    let cutoff = now.saturating_sub(per);
    let total: u64 = runs.iter().map(|r| r.1).sum();
    let dead: u64 = runs.iter().take_while(|r| r.0 <= cutoff).map(|r| r.1).sum();
    if total - dead < n {
        return now;
    }
    // The call `n` back from the newest (index `total - n` in time order) frees the slot.
    let mut seen = 0;
    for &(until, count) in runs {
        seen += count;
        if seen > total - n {
            return until.saturating_add(per).max(now);
        }
    }
    now
}

/// [`free_slots`] over runs `(until, how many)` sorted by time.
pub fn free_slots_runs(runs: &[(Millis, u64)], rate: Rate, now: Millis) -> u32 {
    let cutoff = now.saturating_sub(duration_millis(rate.per));
    let live: u64 = runs.iter().filter(|r| r.0 > cutoff).map(|r| r.1).sum();
    rate.count
        .saturating_sub(u32::try_from(live).unwrap_or(u32::MAX))
}

/// How many more calls `rate` admits at `now`.
pub fn free_slots(untils: &[Millis], rate: Rate, now: Millis) -> u32 {
    let per = duration_millis(rate.per);
    let live = untils.len() - untils.partition_point(|&u| u <= now.saturating_sub(per));
    rate.count
        .saturating_sub(u32::try_from(live).unwrap_or(u32::MAX))
}

/// One counted call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    id: u64,
    at: Millis,
    until: Millis,
}

/// Calls whose `until` has passed, counted together: `(until rounded up, how many)`, sorted by
/// time. They need no id any more (a completion could only lower a time already past).
type Settled = Vec<(Millis, u32)>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct TenantWindows {
    /// Calls that may still be in flight (or whose completion is not written yet).
    #[serde(default)]
    routes: BTreeMap<String, Vec<Entry>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    settled: BTreeMap<String, Settled>,
    #[serde(default)]
    creates: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    settled_creates: Settled,
    /// Route -> time before which the server asked us not to call (Retry-After).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    blocked: BTreeMap<String, Millis>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LedgerFile {
    version: u32,
    #[serde(default)]
    tenants: BTreeMap<String, TenantWindows>,
}

impl Default for LedgerFile {
    fn default() -> Self {
        LedgerFile {
            version: FORMAT_VERSION,
            tenants: BTreeMap::new(),
        }
    }
}

/// Settled buckets and entries as runs `(until, how many)`, ascending.
fn runs(settled: &[(Millis, u32)], entries: &[Entry]) -> Vec<(Millis, u64)> {
    let mut v: Vec<(Millis, u64)> = settled
        .iter()
        .map(|&(t, c)| (t, u64::from(c)))
        .chain(entries.iter().map(|e| (e.until, 1)))
        .collect();
    v.sort_unstable_by_key(|r| r.0);
    v
}

/// Every counted call's `until`, ascending: the settled counts expanded, then the entries.
fn sorted_untils(settled: &[(Millis, u32)], entries: &[Entry]) -> Vec<Millis> {
    let n: usize = settled.iter().map(|&(_, c)| c as usize).sum::<usize>() + entries.len();
    let mut v: Vec<Millis> = Vec::with_capacity(n);
    for &(until, count) in settled {
        v.extend(std::iter::repeat_n(until, count as usize));
    }
    v.extend(entries.iter().map(|e| e.until));
    v.sort_unstable();
    v
}

/// Which limit holds a call back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limiter {
    /// The per-route limit.
    Route,
    /// The user-create limit.
    Creates,
    /// The server's `Retry-After`.
    RetryAfter,
}

/// No budget now: when the next slot frees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no rate budget left for `{route}` ({}); next budget at {}", self.limit_text(), rfc3339(*next_at))]
pub struct NoBudget {
    /// METHOD + path template.
    pub route: String,
    /// What holds the call back.
    pub limiter: Limiter,
    /// The limit in force (route or create limit).
    pub limit: Rate,
    /// When a slot frees (for the route and, for creates, the create window).
    pub next_at: SystemTime,
}

impl NoBudget {
    fn limit_text(&self) -> String {
        match self.limiter {
            Limiter::Route => format!("{} per route", self.limit),
            Limiter::Creates => format!("{} user creates", self.limit),
            Limiter::RetryAfter => "Carbonite answered 429 with Retry-After".into(),
        }
    }
}

/// Move the entries whose `until` is at or before `now` into `settled`, their time rounded up
/// to a multiple of `grain` (later, so never fewer calls counted at any time).
fn settle(entries: &mut Vec<Entry>, settled: &mut Settled, now: Millis, grain: Millis) {
    let grain = grain.max(1);
    entries.retain(|e| {
        if e.until > now {
            return true;
        }
        let at = e
            .until
            .div_euclid(grain)
            .saturating_add(1)
            .saturating_mul(grain);
        let at = if e.until.rem_euclid(grain) == 0 {
            e.until
        } else {
            at
        };
        match settled.binary_search_by_key(&at, |&(t, _)| t) {
            Ok(i) => settled[i].1 = settled[i].1.saturating_add(1),
            Err(i) => settled.insert(i, (at, 1)),
        }
        false
    });
}

/// Settled counts are rounded up to the second (to 1% of windows shorter than 100 s).
fn grain(rate: Rate) -> Millis {
    (duration_millis(rate.per) / 100).min(1000)
}

impl TenantWindows {
    fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.settled.is_empty()
            && self.creates.is_empty()
            && self.settled_creates.is_empty()
    }

    fn route_untils(&self, route: &str) -> Vec<Millis> {
        sorted_untils(
            self.settled.get(route).map_or(&[][..], Vec::as_slice),
            self.routes.get(route).map_or(&[][..], Vec::as_slice),
        )
    }

    /// A route's calls as runs `(until, how many)` in time order (for the checks every call
    /// makes: no expansion of the settled counts).
    fn route_runs(&self, route: &str) -> Vec<(Millis, u64)> {
        runs(
            self.settled.get(route).map_or(&[][..], Vec::as_slice),
            self.routes.get(route).map_or(&[][..], Vec::as_slice),
        )
    }

    fn create_runs(&self) -> Vec<(Millis, u64)> {
        runs(&self.settled_creates, &self.creates)
    }

    fn create_untils(&self) -> Vec<Millis> {
        sorted_untils(&self.settled_creates, &self.creates)
    }

    /// Drop what left every window before `now`, and count what has certainly reached the
    /// server by `now` in the settled buckets.
    fn prune(&mut self, limits: RateLimits, now: Millis) {
        self.prune_before(
            now.saturating_sub(duration_millis(limits.per_route.per)),
            now.saturating_sub(duration_millis(limits.user_creates.per)),
            now,
        );
        for (route, entries) in &mut self.routes {
            if entries.iter().any(|e| e.until <= now) {
                let settled = self.settled.entry(route.clone()).or_default();
                settle(entries, settled, now, grain(limits.per_route));
            }
        }
        self.routes.retain(|_, e| !e.is_empty());
        settle(
            &mut self.creates,
            &mut self.settled_creates,
            now,
            grain(limits.user_creates),
        );
    }

    /// Drop calls whose `until` is at or before the cutoffs, and blocks that ended by `now`.
    fn prune_before(&mut self, route_cutoff: Millis, create_cutoff: Millis, now: Millis) {
        for entries in self.routes.values_mut() {
            entries.retain(|e| e.until > route_cutoff);
        }
        self.routes.retain(|_, e| !e.is_empty());
        for settled in self.settled.values_mut() {
            settled.retain(|&(until, _)| until > route_cutoff);
        }
        self.settled.retain(|_, s| !s.is_empty());
        self.creates.retain(|e| e.until > create_cutoff);
        self.settled_creates
            .retain(|&(until, _)| until > create_cutoff);
        self.blocked.retain(|_, until| *until > now);
    }

    /// When a call to `route` can go, or `None` now.
    fn wait(
        &self,
        route: &str,
        is_create: bool,
        limits: RateLimits,
        now: Millis,
    ) -> Option<(Millis, Limiter, Rate)> {
        let mut worst = (
            earliest_slot_runs(&self.route_runs(route), limits.per_route, now),
            Limiter::Route,
            limits.per_route,
        );
        if is_create {
            let c = earliest_slot_runs(&self.create_runs(), limits.user_creates, now);
            if c > worst.0 {
                worst = (c, Limiter::Creates, limits.user_creates);
            }
        }
        if let Some(&b) = self.blocked.get(route)
            && b > worst.0
        {
            worst = (b, Limiter::RetryAfter, limits.per_route);
        }
        (worst.0 > now).then_some(worst)
    }
}

// ---------------------------------------------------------------------------------------------
// The file-backed ledger.

/// Why the ledger could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading, writing or locking failed.
    #[error("cannot {op} the rate-limit ledger {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a ledger this version understands.
    #[error("the rate-limit ledger {} is unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// No slot now (and not within the allowed wait).
    #[error(transparent)]
    NoBudget(#[from] NoBudget),
}

impl LedgerError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            LedgerError::Corrupt { path, .. } => Some(format!(
                "stop every carbonite-sync process using this state dir, then remove {} (the \
                 calls it recorded are then forgotten: wait one rate window before calling again)",
                path.display()
            )),
            LedgerError::NoBudget(_) => Some(
                "rerun after that time, or allow waiting (`--max-wait`); the ledger protects only \
                 runs that share this state dir"
                    .into(),
            ),
            LedgerError::Io { .. } => None,
        }
    }
}

/// A slot taken by [`Ledger::try_reserve`]; hand it to [`Ledger::complete`] when the response
/// arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    id: u64,
    /// METHOD + path template.
    pub route: String,
    /// Counted against the create limit too.
    pub is_create: bool,
    /// When the slot was taken.
    pub at: SystemTime,
}

/// Budget of one route now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Calls that could go right now.
    pub remaining: u32,
    /// When the next slot frees after those (now, when `remaining > 0`).
    pub next_free: SystemTime,
}

/// Calls a plan will make on one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedCalls {
    /// METHOD + path template.
    pub route: String,
    /// How many.
    pub count: u64,
    /// Whether each is a user create.
    pub is_create: bool,
}

/// When planned calls can be done, given the ledger now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// When the last call can go (now when nothing is planned).
    pub completion: SystemTime,
    /// Per route: when its last call can go.
    pub per_route: BTreeMap<String, SystemTime>,
}

/// The rate-limit ledger of one tenant in one state dir. See the [module docs](self).
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    lock_path: PathBuf,
    key: String,
    limits: RateLimits,
    hold: Duration,
    /// flock serialises processes; this serialises the tasks of this one (so they wait here
    /// rather than in the kernel), and holds what this process knows beyond the file.
    local: Mutex<Local>,
}

/// The file as this process last read or wrote it, the completions not written yet, and the
/// slots reserved ahead for calls announced with [`Ledger::expect`].
#[derive(Debug, Default)]
struct Local {
    memo: Option<(FileId, LedgerFile)>,
    /// (reservation id, route, is_create, arrival): applied to every view of the windows,
    /// written with the next write.
    pending: Vec<(u64, String, bool, Millis)>,
    /// Calls announced per route and not reserved yet.
    expected: BTreeMap<String, Expected>,
    /// Slots reserved ahead per route, not used yet (in the file, counted like any call).
    pool: BTreeMap<String, Vec<Entry>>,
    /// (reservation id, route) of pooled slots never used: removed from the file with the next
    /// write (no call was made with them).
    released: Vec<(u64, String)>,
}

/// Calls announced for a route: how many, and how long after its reservation a slot reserved
/// ahead may still be used.
#[derive(Clone, Copy, Debug)]
struct Expected {
    calls: usize,
    within: Millis,
}

impl Local {
    /// A pooled slot of `route` still usable at `now`; the expired ones are released.
    fn take_pooled(&mut self, route: &str, now: Millis) -> Option<Entry> {
        let within = self.expected.get(route).map_or(0, |e| e.within);
        let pool = self.pool.get_mut(route)?;
        while let Some(entry) = pool.pop() {
            if entry.at.saturating_add(within) >= now {
                if let Some(e) = self.expected.get_mut(route) {
                    e.calls = e.calls.saturating_sub(1);
                }
                return Some(entry);
            }
            self.released.push((entry.id, route.to_string()));
        }
        None
    }

    /// Every pooled slot released (the process is done with them).
    fn release_pool(&mut self) {
        for (route, entries) in std::mem::take(&mut self.pool) {
            self.released
                .extend(entries.into_iter().map(|e| (e.id, route.clone())));
        }
    }
}

/// What tells a rewritten file from the one this process knows: every write is a rename of a
/// new file, so another writer changes the inode, and size and modification time with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<Option<FileId>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileId::from_metadata(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[cfg(unix)]
    fn from_metadata(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt as _;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        }
    }

    #[cfg(not(unix))]
    fn from_metadata(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: 0,
            ino: 0,
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

impl TenantWindows {
    /// Remove reservation `id` of `route` (a slot reserved ahead and never used).
    fn remove(&mut self, id: u64, route: &str) {
        if let Some(entries) = self.routes.get_mut(route) {
            entries.retain(|e| e.id != id);
        }
        self.creates.retain(|e| e.id != id);
    }

    /// Lower the `until` of reservation `id` to `arrived` (never below its `at`).
    fn lower(&mut self, id: u64, route: &str, is_create: bool, arrived: Millis) {
        let lower = |entries: &mut Vec<Entry>| {
            if let Some(e) = entries.iter_mut().find(|e| e.id == id) {
                e.until = e.until.min(arrived).max(e.at);
            }
        };
        if let Some(entries) = self.routes.get_mut(route) {
            lower(entries);
        }
        if is_create {
            lower(&mut self.creates);
        }
    }
}

impl Ledger {
    /// The ledger of tenant `key` (`<base URL> <email>`) in `state_dir` (created, with its
    /// `.gitignore`, when missing). `hold` is how long an unanswered call may still reach the
    /// server: the request timeout plus a margin.
    pub fn open(
        state_dir: &Path,
        key: impl Into<String>,
        limits: RateLimits,
        hold: Duration,
    ) -> Result<Ledger, LedgerError> {
        ensure_state_dir(state_dir).map_err(|source| LedgerError::Io {
            op: "create the state dir for",
            path: state_dir.to_path_buf(),
            source,
        })?;
        Ok(Ledger {
            path: state_dir.join(LEDGER_FILE),
            lock_path: state_dir.join(LEDGER_LOCK_FILE),
            key: key.into(),
            limits,
            hold,
            local: Mutex::new(Local::default()),
        })
    }

    /// The tenant key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError {
        let path = path.to_path_buf();
        move |source| LedgerError::Io { op, path, source }
    }

    /// Run `f` on this tenant's windows under the lock (exclusive when `write` is set). When
    /// `f` says it changed something, save the file (`write == Some(true)`: fsynced).
    fn locked<R>(
        &self,
        write: Option<bool>,
        now: Millis,
        f: impl FnOnce(&mut TenantWindows) -> (R, bool),
    ) -> Result<R, LedgerError> {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let lock = private_options()
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(self.io("open the lock of", &self.lock_path))?;
        if write.is_some() {
            lock.lock()
        } else {
            lock.lock_shared()
        }
        .map_err(self.io("lock", &self.lock_path))?;
        let result = self.locked_inner(&mut local, write, now, f);
        // Dropping the handle releases the flock too; unlock first to be explicit.
        let _ = File::unlock(&lock);
        result
    }

    fn locked_inner<R>(
        &self,
        local: &mut Local,
        write: Option<bool>,
        now: Millis,
        f: impl FnOnce(&mut TenantWindows) -> (R, bool),
    ) -> Result<R, LedgerError> {
        let id = FileId::of(&self.path).map_err(self.io("read", &self.path))?;
        let mut file = match (local.memo.take(), id) {
            (Some((known, file)), Some(id)) if known == id => file,
            (_, None) => LedgerFile::default(),
            _ => self.read()?,
        };
        let mut tenant = file.tenants.remove(&self.key).unwrap_or_default();
        for (id, route, is_create, arrived) in &local.pending {
            tenant.lower(*id, route, *is_create, *arrived);
        }
        for (id, route) in &local.released {
            tenant.remove(*id, route);
        }
        tenant.prune(self.limits, now);
        let (result, mut changed) = f(&mut tenant);
        // Completions waiting to be written go with any write.
        changed |= write.is_some() && !(local.pending.is_empty() && local.released.is_empty());
        let Some(durable) = write.filter(|_| changed) else {
            // Unchanged: what was read is still the file.
            if let Some(id) = id {
                file.tenants.insert(self.key.clone(), tenant);
                local.memo = Some((id, file));
            }
            return Ok(result);
        };
        {
            let foreign_cutoff = now.saturating_sub(duration_millis(FOREIGN_RETENTION));
            for other in file.tenants.values_mut() {
                other.prune_before(foreign_cutoff, foreign_cutoff, now);
            }
            file.tenants.retain(|_, t| !t.is_empty());
            if !tenant.is_empty() || !tenant.blocked.is_empty() {
                file.tenants.insert(self.key.clone(), tenant);
            }
            file.version = FORMAT_VERSION;
            let bytes = serde_json::to_vec(&file).map_err(|e| LedgerError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
            write_atomic(&self.path, &bytes, durable).map_err(self.io("write", &self.path))?;
            local.pending.clear();
            local.released.clear();
            // The file is now what this process wrote (the lock is still held).
            if let Some(id) = FileId::of(&self.path).map_err(self.io("read", &self.path))? {
                local.memo = Some((id, file));
            }
        }
        Ok(result)
    }

    fn read(&self) -> Result<LedgerFile, LedgerError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LedgerFile::default()),
            Err(e) => return Err(self.io("read", &self.path)(e)),
        };
        let file: LedgerFile =
            serde_json::from_slice(&bytes).map_err(|e| LedgerError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        if !READS_VERSIONS.contains(&file.version) {
            return Err(LedgerError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "format version {} (this carbonite-sync writes {FORMAT_VERSION})",
                    file.version
                ),
            });
        }
        Ok(file)
    }

    /// Take a slot for one call to `route` now, or say when the next one frees.
    pub fn try_reserve(&self, route: &str, is_create: bool) -> Result<Reservation, LedgerError> {
        self.try_reserve_at(route, is_create, SystemTime::now())
    }

    /// [`try_reserve`](Self::try_reserve) with an explicit clock.
    pub fn try_reserve_at(
        &self,
        route: &str,
        is_create: bool,
        now: SystemTime,
    ) -> Result<Reservation, LedgerError> {
        let now_ms = to_millis(now);
        // Announced calls: a slot reserved ahead is used without touching the file.
        let want = if is_create {
            1
        } else {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = local.take_pooled(route, now_ms) {
                return Ok(Reservation {
                    id: entry.id,
                    route: route.to_string(),
                    is_create,
                    at: from_millis(entry.at),
                });
            }
            local.expected.get(route).map_or(1, |e| e.calls.max(1))
        };
        let limits = self.limits;
        let hold = duration_millis(self.hold);
        let outcome = self.locked(Some(true), now_ms, |t| {
            if let Some((next, limiter, limit)) = t.wait(route, is_create, limits, now_ms) {
                let refusal = NoBudget {
                    route: route.to_string(),
                    limiter,
                    limit,
                    next_at: from_millis(next),
                };
                return (Err(refusal), false);
            }
            // One slot, or as many of the announced calls as the window admits now (one
            // durable write for all of them), at most `AHEAD_MAX` and a quarter of the limit:
            // a process killed before giving unused slots back leaves them counted.
            let free = free_slots_runs(&t.route_runs(route), limits.per_route, now_ms);
            let cap = AHEAD_MAX.min((limits.per_route.count / 4).max(1) as usize);
            let take = want.min(free as usize).min(cap).max(1);
            let entries: Vec<Entry> = (0..take)
                .map(|_| Entry {
                    // 53 bits: exact in every JSON reader (doubles).
                    id: rand::random::<u64>() >> 11,
                    at: now_ms,
                    until: now_ms.saturating_add(hold),
                })
                .collect();
            t.routes
                .entry(route.to_string())
                .or_default()
                .extend(&entries);
            if is_create {
                t.creates.extend(&entries);
            }
            (Ok(entries), true)
        });
        let mut entries = outcome??;
        let first = entries.remove(0);
        if !entries.is_empty() {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = local.expected.get_mut(route) {
                e.calls = e.calls.saturating_sub(entries.len() + 1);
            }
            local
                .pool
                .entry(route.to_string())
                .or_default()
                .extend(entries);
        }
        Ok(Reservation {
            id: first.id,
            route: route.to_string(),
            is_create,
            at: now,
        })
    }

    /// `calls` more calls to `route` (not creates) follow now: the next reservation takes
    /// slots for as many of them as the window admits in one write (at most 32, and at most a
    /// quarter of the route's limit), and those slots serve the
    /// following reservations for `within` after they were taken (the margin the hold keeps
    /// beyond the request timeout, so a call made with one still ends before its `until`).
    /// Slots not used by then, or by [`flush`](Self::flush), are given back.
    /// `calls == 0` ends the announcement and gives the route's unused slots back.
    pub fn expect(&self, route: &str, calls: usize, within: Duration) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if calls == 0 {
            local.expected.remove(route);
            if let Some(entries) = local.pool.remove(route) {
                local
                    .released
                    .extend(entries.into_iter().map(|e| (e.id, route.to_string())));
            }
            return;
        }
        let pooled = local.pool.get(route).map_or(0, Vec::len);
        local.expected.insert(
            route.to_string(),
            Expected {
                calls: calls.saturating_sub(pooled),
                within: duration_millis(within),
            },
        );
    }

    /// Take a slot, sleeping until one frees as long as that is no later than `deadline`
    /// (`None`: do not wait).
    pub async fn reserve_waiting(
        &self,
        route: &str,
        is_create: bool,
        deadline: Option<SystemTime>,
    ) -> Result<Reservation, LedgerError> {
        loop {
            match self.try_reserve(route, is_create) {
                Err(LedgerError::NoBudget(nb)) if deadline.is_some_and(|d| nb.next_at <= d) => {
                    let wait = nb
                        .next_at
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    // A little jitter so processes woken by the same expiry do not all collide.
                    let jitter = Duration::from_millis(rand::random::<u64>() % 25);
                    tracing::debug!(
                        route,
                        wait_ms = wait.as_millis() as u64,
                        "ledger: waiting for a slot"
                    );
                    tokio::time::sleep(wait + jitter).await;
                }
                other => return other,
            }
        }
    }

    /// The response of a reserved call arrived: the call was admitted by now at the latest.
    pub fn complete(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        self.complete_at(reservation, SystemTime::now())
    }

    /// [`complete`](Self::complete) with an explicit clock.
    pub fn complete_at(
        &self,
        reservation: &Reservation,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        // Kept until the next write: losing it keeps the pessimistic `until`, which is safe.
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.pending.push((
            reservation.id,
            reservation.route.clone(),
            reservation.is_create,
            to_millis(now),
        ));
        Ok(())
    }

    /// Write the completions this process has not written yet and give back the slots it
    /// reserved ahead and did not use (also done on drop).
    pub fn flush(&self) -> Result<(), LedgerError> {
        let dirty = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local.expected.clear();
            local.release_pool();
            !(local.pending.is_empty() && local.released.is_empty())
        };
        if dirty {
            self.locked(Some(false), to_millis(SystemTime::now()), |_| ((), true))?;
        }
        Ok(())
    }

    /// The server answered 429 for `route`: nobody calls it before `until`.
    pub fn block_until(&self, route: &str, until: SystemTime) -> Result<(), LedgerError> {
        let now = to_millis(SystemTime::now());
        let until = to_millis(until);
        self.locked(Some(false), now, |t| {
            let b = t.blocked.entry(route.to_string()).or_insert(until);
            *b = (*b).max(until);
            ((), true)
        })
    }

    /// How many calls to `route` could go now, and when the next slot frees.
    pub fn budget(&self, route: &str, is_create: bool) -> Result<Budget, LedgerError> {
        self.budget_at(route, is_create, SystemTime::now())
    }

    /// [`budget`](Self::budget) with an explicit clock.
    pub fn budget_at(
        &self,
        route: &str,
        is_create: bool,
        now: SystemTime,
    ) -> Result<Budget, LedgerError> {
        let now_ms = to_millis(now);
        let limits = self.limits;
        self.locked(None, now_ms, |t| {
            let mut remaining = free_slots_runs(&t.route_runs(route), limits.per_route, now_ms);
            if is_create {
                let c = t.create_runs();
                remaining = remaining.min(free_slots_runs(&c, limits.user_creates, now_ms));
            }
            if t.blocked.get(route).is_some_and(|&b| b > now_ms) {
                remaining = 0;
            }
            let next = if remaining > 0 {
                now_ms
            } else {
                t.wait(route, is_create, limits, now_ms)
                    .map_or(now_ms, |(at, _, _)| at)
            };
            let budget = Budget {
                remaining,
                next_free: from_millis(next),
            };
            (budget, false)
        })
    }

    /// When `calls` could all be made, starting at `now`, given the ledger as it is: each
    /// route paced by its window, creates by the create window too (SPEC §7 estimate).
    pub fn schedule(
        &self,
        calls: &[PlannedCalls],
        now: SystemTime,
    ) -> Result<Schedule, LedgerError> {
        let now_ms = to_millis(now);
        let limits = self.limits;
        self.locked(None, now_ms, |t| {
            (schedule_calls(t, limits, calls, now_ms), false)
        })
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::debug!("ledger: completions not written: {e}");
        }
    }
}

/// Simulate `calls` on a copy of the windows: every call goes at the earliest free slot.
fn schedule_calls(
    t: &TenantWindows,
    limits: RateLimits,
    calls: &[PlannedCalls],
    now: Millis,
) -> Schedule {
    let mut routes: BTreeMap<&str, Vec<Millis>> = BTreeMap::new();
    let mut creates = t.create_untils();
    let mut per_route = BTreeMap::new();
    let mut completion = now;
    for c in calls {
        let untils = routes
            .entry(c.route.as_str())
            .or_insert_with(|| t.route_untils(&c.route));
        let mut cursor = t.blocked.get(&c.route).copied().unwrap_or(now).max(now);
        for _ in 0..c.count {
            loop {
                let mut at = earliest_slot(untils, limits.per_route, cursor);
                if c.is_create {
                    at = at.max(earliest_slot(&creates, limits.user_creates, cursor));
                }
                if at == cursor {
                    break;
                }
                cursor = at;
            }
            let pos = untils.partition_point(|&u| u <= cursor);
            untils.insert(pos, cursor);
            if c.is_create {
                let pos = creates.partition_point(|&u| u <= cursor);
                creates.insert(pos, cursor);
            }
        }
        let done = from_millis(cursor);
        per_route
            .entry(c.route.clone())
            .and_modify(|d: &mut SystemTime| *d = (*d).max(done))
            .or_insert(done);
        completion = completion.max(cursor);
    }
    Schedule {
        completion: from_millis(completion),
        per_route,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    fn limits(route: &str, creates: &str) -> RateLimits {
        RateLimits {
            per_route: rate(route),
            user_creates: rate(creates),
        }
    }

    const T0: Millis = 1_700_000_000_000;

    #[test]
    fn earliest_slot_follows_the_sliding_window() {
        let r = rate("3/10s");
        assert_eq!(earliest_slot(&[], r, T0), T0);
        assert_eq!(earliest_slot(&[T0, T0 + 1], r, T0 + 2), T0 + 2);
        // Full: the oldest of the last three leaves at T0 + 10s.
        assert_eq!(earliest_slot(&[T0, T0 + 1, T0 + 2], r, T0 + 3), T0 + 10_000);
        // Exactly one window later the oldest no longer counts.
        assert_eq!(
            earliest_slot(&[T0, T0 + 1, T0 + 2], r, T0 + 10_000),
            T0 + 10_000
        );
        // In-flight entries (until in the future) count.
        assert_eq!(
            earliest_slot(&[T0 + 5_000, T0 + 6_000, T0 + 30_000], r, T0),
            T0 + 15_000
        );
        assert_eq!(free_slots(&[T0, T0 + 1], r, T0 + 2), 1);
        assert_eq!(free_slots(&[T0, T0 + 1], r, T0 + 10_000), 2);
    }

    #[test]
    fn reserve_refuses_beyond_the_limit_and_frees_after_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(
            dir.path(),
            "http://x a@b",
            limits("2/10s", "100/1h"),
            Duration::from_secs(1),
        )
        .unwrap();
        let t = from_millis(T0);
        let r1 = l.try_reserve_at("GET /api/users", false, t).unwrap();
        l.complete_at(&r1, t + Duration::from_millis(100)).unwrap();
        let r2 = l
            .try_reserve_at("GET /api/users", false, t + Duration::from_millis(200))
            .unwrap();
        // r2 is still in flight: it counts until its hold expires.
        let err = l
            .try_reserve_at("GET /api/users", false, t + Duration::from_millis(300))
            .unwrap_err();
        let LedgerError::NoBudget(nb) = err else {
            panic!("{err}")
        };
        assert_eq!(nb.limiter, Limiter::Route);
        assert_eq!(nb.next_at, t + Duration::from_millis(10_100));
        assert!(nb.to_string().starts_with(
            "no rate budget left for `GET /api/users` (2/10s per route); next budget at 2023-11-14T"
        ));
        // Another route has its own window.
        l.try_reserve_at("GET /api/companies", false, t).unwrap();
        l.complete_at(&r2, t + Duration::from_millis(400)).unwrap();
        assert!(
            l.try_reserve_at("GET /api/users", false, t + Duration::from_millis(10_099))
                .is_err()
        );
        l.try_reserve_at("GET /api/users", false, t + Duration::from_millis(10_100))
            .unwrap();
    }

    #[test]
    fn two_processes_see_each_others_calls_and_completions_are_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Ledger::open(
                dir.path(),
                "http://x a@b",
                limits("3/10s", "100/1h"),
                Duration::from_secs(5),
            )
            .unwrap()
        };
        let (a, b) = (open(), open());
        // The real clock: `flush` and drop write at the time they run.
        let t = SystemTime::now();
        let route = "GET /api/users";
        let ra = a.try_reserve_at(route, false, t).unwrap();
        // `b` knows nothing yet, reads the file written by `a`.
        b.try_reserve_at(route, false, t).unwrap();
        // `a` kept the file it wrote; it must notice `b`'s write: one slot left, not two.
        a.try_reserve_at(route, false, t).unwrap();
        assert!(b.try_reserve_at(route, false, t).is_err());
        // A completion counts at once in its own process, and reaches the file on flush.
        a.complete_at(&ra, t + Duration::from_millis(100)).unwrap();
        let later = t + Duration::from_millis(10_200);
        assert_eq!(a.budget_at(route, false, later).unwrap().remaining, 1);
        assert_eq!(b.budget_at(route, false, later).unwrap().remaining, 0);
        a.flush().unwrap();
        assert_eq!(b.budget_at(route, false, later).unwrap().remaining, 1);
        // Dropping a ledger writes what it has not written.
        let rb = b.try_reserve_at(route, false, later).unwrap();
        b.complete_at(&rb, later + Duration::from_millis(50))
            .unwrap();
        drop(b);
        let far = later + Duration::from_millis(10_100);
        assert_eq!(a.budget_at(route, false, far).unwrap().remaining, 3);
    }

    /// A ledger of tenant `k` with `per_route` limits (creates 100/1h) and a 30 s hold.
    fn ledger(dir: &Path, per_route: &str) -> Ledger {
        Ledger::open(
            dir,
            "k",
            limits(per_route, "100/1h"),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    /// A whole second near the real clock (`flush` and `drop` write at the time they run).
    fn near_now() -> SystemTime {
        from_millis((to_millis(SystemTime::now()) / 1000 + 1) * 1000)
    }

    /// How many calls of `route` the file counts (entries and settled buckets).
    fn counted(dir: &Path, route: &str) -> u64 {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(LEDGER_FILE)).unwrap()).unwrap();
        let t = &v["tenants"]["k"];
        let entries = t["routes"][route].as_array().map_or(0, Vec::len) as u64;
        let settled: u64 = t["settled"][route]
            .as_array()
            .map_or(0, |b| b.iter().map(|b| b[1].as_u64().unwrap()).sum());
        entries + settled
    }

    #[test]
    fn announced_calls_are_reserved_in_one_write_and_unused_slots_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path(), "100/1h");
        let other = ledger(dir.path(), "100/1h");
        let t = near_now();
        let route = "GET /api/users";
        let path = dir.path().join(LEDGER_FILE);
        l.expect(route, 10, Duration::from_secs(2));
        let first = l.try_reserve_at(route, false, t).unwrap();
        // All ten slots are in the file after the first reservation: another process counts
        // them before the calls are made.
        assert_eq!(counted(dir.path(), route), 10);
        assert_eq!(other.budget_at(route, false, t).unwrap().remaining, 90);
        let written = FileId::of(&path).unwrap();
        let mut ids = vec![first.id];
        for i in 1..6 {
            let r = l
                .try_reserve_at(route, false, t + Duration::from_millis(i))
                .unwrap();
            ids.push(r.id);
        }
        // Served from the slots taken ahead: the file was not written again.
        assert_eq!(FileId::of(&path).unwrap(), written);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 6, "each call has its own slot");
        // The listing ends after six calls: the four slots it did not use are given back.
        l.expect(route, 0, Duration::ZERO);
        l.flush().unwrap();
        assert_eq!(counted(dir.path(), route), 6);
        assert_eq!(other.budget_at(route, false, t).unwrap().remaining, 94);
    }

    #[test]
    fn announced_calls_take_only_the_free_slots_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path(), "4/1h");
        let t = near_now();
        let route = "GET /api/users";
        // Ten announced, four admitted: the fifth call is refused as without the announcement.
        l.expect(route, 10, Duration::from_secs(2));
        for i in 0..4 {
            l.try_reserve_at(route, false, t + Duration::from_millis(i))
                .unwrap();
        }
        assert!(matches!(
            l.try_reserve_at(route, false, t + Duration::from_millis(5)),
            Err(LedgerError::NoBudget(_))
        ));
        assert_eq!(counted(dir.path(), route), 4);

        // A slot taken ahead is used only within `within` of its reservation (the hold's margin
        // beyond the request timeout); later it is given back and a fresh one taken.
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path(), "100/1h");
        l.expect(route, 3, Duration::from_secs(2));
        let a = l.try_reserve_at(route, false, t).unwrap();
        assert_eq!(counted(dir.path(), route), 3);
        let b = l
            .try_reserve_at(route, false, t + Duration::from_secs(3))
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(b.at, t + Duration::from_secs(3), "a fresh slot");
        // Dropping the ledger gives the unused slots back: two calls were made.
        drop(l);
        assert_eq!(counted(dir.path(), route), 2);

        // One write takes at most 32 slots ahead, and at most a quarter of the limit.
        for (limit, taken) in [("1000/1h", 32), ("50/1h", 12)] {
            let dir = tempfile::tempdir().unwrap();
            let l = ledger(dir.path(), limit);
            l.expect(route, 100, Duration::from_secs(2));
            l.try_reserve_at(route, false, t).unwrap();
            assert_eq!(counted(dir.path(), route), taken, "{limit}");
        }
    }

    #[test]
    fn runs_count_like_the_calls_they_stand_for() {
        // Deterministic pseudo-random windows: runs and their expansion agree everywhere.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..500 {
            let rate = Rate {
                count: 1 + next(8) as u32,
                per: Duration::from_millis(1 + next(5_000)),
            };
            let mut runs: Vec<(Millis, u64)> = (0..next(6))
                .map(|_| (T0 + next(10_000) as i64, 1 + next(4)))
                .collect();
            runs.sort_unstable_by_key(|r| r.0);
            let untils: Vec<Millis> = runs
                .iter()
                .flat_map(|&(t, c)| std::iter::repeat_n(t, c as usize))
                .collect();
            let now = T0 + next(15_000) as i64;
            assert_eq!(
                earliest_slot_runs(&runs, rate, now),
                earliest_slot(&untils, rate, now),
                "{runs:?} {rate} {now}"
            );
            assert_eq!(
                free_slots_runs(&runs, rate, now),
                free_slots(&untils, rate, now)
            );
        }
    }

    #[test]
    fn answered_calls_are_counted_in_buckets_and_version_1_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path(), "5/10s");
        // Near the real clock (`block_until` writes at the time it runs), on a whole second.
        let base = (to_millis(SystemTime::now()) / 1000 + 1) * 1000;
        let t = from_millis(base);
        let route = "GET /api/users";
        for i in 0..5 {
            let at = t + Duration::from_millis(10 * i);
            let r = l.try_reserve_at(route, false, at).unwrap();
            l.complete_at(&r, at + Duration::from_millis(5)).unwrap();
        }
        // The next write settles the five answered calls: one bucket at `base` + 100 ms (the grain
        // of a 10 s window), still counted.
        let err = l
            .try_reserve_at(route, false, t + Duration::from_millis(60))
            .unwrap_err();
        let LedgerError::NoBudget(nb) = err else {
            panic!("{err}")
        };
        assert_eq!(nb.next_at, t + Duration::from_millis(10_100));
        l.block_until("GET /other", t + Duration::from_secs(1))
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(LEDGER_FILE)).unwrap()).unwrap();
        assert_eq!(
            v["tenants"]["k"]["settled"][route],
            serde_json::json!([[base + 100, 5]]),
            "{v}"
        );
        assert!(v["tenants"]["k"]["routes"].get(route).is_none(), "{v}");
        assert!(
            l.try_reserve_at(route, false, t + Duration::from_millis(10_099))
                .is_err()
        );
        l.try_reserve_at(route, false, t + Duration::from_millis(10_100))
            .unwrap();

        // A version 1 file (every call an entry) is read as it is.
        let v1 = serde_json::json!({"version": 1, "tenants": {"k": {"routes": {route: [
            {"id": 1, "at": base, "until": base + 10},
            {"id": 2, "at": base, "until": base + 20},
        ]}, "creates": []}}});
        std::fs::write(dir.path().join(LEDGER_FILE), v1.to_string()).unwrap();
        let b = l
            .budget_at(route, false, t + Duration::from_secs(1))
            .unwrap();
        assert_eq!(b.remaining, 3);
    }

    #[test]
    fn creates_count_against_both_windows() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(
            dir.path(),
            "k",
            limits("5/1h", "2/1h"),
            Duration::from_secs(1),
        )
        .unwrap();
        let t = from_millis(T0);
        for _ in 0..2 {
            let r = l.try_reserve_at("POST /api/users", true, t).unwrap();
            l.complete_at(&r, t).unwrap();
        }
        let Err(LedgerError::NoBudget(nb)) = l.try_reserve_at("POST /api/users", true, t) else {
            panic!()
        };
        assert_eq!(nb.limiter, Limiter::Creates);
        // The route itself still has budget for non-creates (e.g. a POST that is not a create).
        assert_eq!(
            l.budget_at("POST /api/users", false, t).unwrap().remaining,
            3
        );
        assert_eq!(
            l.budget_at("POST /api/users", true, t).unwrap().remaining,
            0
        );
    }

    #[test]
    fn tenants_are_separate_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let lim = limits("1/1h", "1/1h");
        let a = Ledger::open(dir.path(), "https://a x@y", lim, Duration::from_secs(1)).unwrap();
        let b = Ledger::open(dir.path(), "https://b x@y", lim, Duration::from_secs(1)).unwrap();
        a.try_reserve("GET /api/users", false).unwrap();
        assert!(a.try_reserve("GET /api/users", false).is_err());
        b.try_reserve("GET /api/users", false).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEDGER_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["tenants"].as_object().unwrap().len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(LEDGER_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn retry_after_blocks_the_route() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(
            dir.path(),
            "k",
            limits("50/1h", "100/1h"),
            Duration::from_secs(1),
        )
        .unwrap();
        let until = SystemTime::now() + Duration::from_secs(30);
        l.block_until("GET /api/users", until).unwrap();
        let Err(LedgerError::NoBudget(nb)) = l.try_reserve("GET /api/users", false) else {
            panic!()
        };
        assert_eq!(nb.limiter, Limiter::RetryAfter);
        assert_eq!(to_millis(nb.next_at), to_millis(until));
        assert_eq!(l.budget("GET /api/users", false).unwrap().remaining, 0);
    }

    #[test]
    fn corrupt_file_is_an_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEDGER_FILE), "{not json").unwrap();
        let l = Ledger::open(dir.path(), "k", limits("1/1h", "1/1h"), Duration::ZERO).unwrap();
        let e = l.try_reserve("GET /x", false).unwrap_err();
        assert!(matches!(e, LedgerError::Corrupt { .. }), "{e}");
        assert!(e.hint().unwrap().contains("remove"));
    }

    #[test]
    fn schedule_paces_routes_and_creates() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(
            dir.path(),
            "k",
            limits("50/1h", "100/1h"),
            Duration::from_secs(1),
        )
        .unwrap();
        let now = from_millis(T0);
        // 200 listing pages at 50/h: 50 now, then 50 each hour -> the last at +3h.
        let s = l
            .schedule(
                &[PlannedCalls {
                    route: "GET /api/users".into(),
                    count: 200,
                    is_create: false,
                }],
                now,
            )
            .unwrap();
        assert_eq!(s.completion, now + Duration::from_secs(3 * 3600));
        // 120 creates: the route limit (50/h) is the tighter one -> +2h.
        let s = l
            .schedule(
                &[
                    PlannedCalls {
                        route: "POST /api/users".into(),
                        count: 120,
                        is_create: true,
                    },
                    PlannedCalls {
                        route: "PUT /api/users/{UserId}".into(),
                        count: 10,
                        is_create: false,
                    },
                ],
                now,
            )
            .unwrap();
        assert_eq!(s.completion, now + Duration::from_secs(2 * 3600));
        assert_eq!(s.per_route["PUT /api/users/{UserId}"], now);
        // Nothing planned: now.
        assert_eq!(l.schedule(&[], now).unwrap().completion, now);
    }

    #[test]
    fn schedule_starts_from_the_calls_already_made() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path(), "k", limits("2/1h", "100/1h"), Duration::ZERO).unwrap();
        let now = from_millis(T0);
        l.try_reserve_at("GET /api/users", false, now).unwrap();
        l.try_reserve_at("GET /api/users", false, now + Duration::from_secs(60))
            .unwrap();
        let s = l
            .schedule(
                &[PlannedCalls {
                    route: "GET /api/users".into(),
                    count: 1,
                    is_create: false,
                }],
                now + Duration::from_secs(120),
            )
            .unwrap();
        assert_eq!(s.completion, now + Duration::from_secs(3600));
    }
}
