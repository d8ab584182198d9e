//! The executor (SPEC §8): runs a plan's changes against Carbonite in §6.9 order, with bounded
//! concurrency, every call through the client (token, rate-limit ledger, retries), each write
//! journaled (intent before, result after, fsynced), the observed-state cache and
//! `suspended.json` kept current from the answers. Creates whose outcome is unknown are looked
//! up by Email and linked or created once more, never blindly repeated.
//!
//! What to run is data ([`Operation`]); how it went is data ([`Report`]). Printing is the
//! command's job.

pub mod run;
pub mod saved;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use futures_util::StreamExt as _;
use serde_json::{Map, Value};

use crate::carbonite::{CarboniteClient, ClientError, CreateError, DeleteOutcome};
use crate::config::Config;
use crate::journal::{Intent, Journal, OpResult, Record, Verdict};
use crate::observed_cache::ObservedCache;
use crate::reconcile::{Action, Change};
use crate::state::StateFiles;

/// One change to execute, with what the executor needs beyond the plan.
#[derive(Clone, Debug)]
pub struct Operation {
    pub change: Change,
    /// The mapping's key field (`UserCustom1`, ...).
    pub key_field: String,
    /// The mapping's endpoints (where a created account is filed in the cache).
    pub endpoints: Vec<String>,
    /// The directory entry (`user` of the orchestrations' webhooks), when known.
    pub entry: Option<std::sync::Arc<crate::directory::Entry>>,
    /// The account as observed at plan time (`account` until the write answers).
    pub account: Option<Value>,
}

impl Operation {
    /// The operations of `changes` for `cfg` (changes of an unknown mapping are an error).
    pub fn from_changes(cfg: &Config, changes: &[Change]) -> Result<Vec<Operation>, String> {
        changes
            .iter()
            .map(|c| {
                let m = cfg
                    .mappings
                    .iter()
                    .find(|m| m.name == c.mapping)
                    .ok_or_else(|| {
                        format!(
                            "the plan names mapping `{}`, which the config does not have",
                            c.mapping
                        )
                    })?;
                Ok(Operation {
                    change: c.clone(),
                    key_field: m.primary_key.carbonite.clone(),
                    endpoints: m.endpoints.clone(),
                    entry: None,
                    account: None,
                })
            })
            .collect()
    }

    /// The body fields: every planned field's new value; a create leaves empty ones out, other
    /// writes send `null` to clear a field.
    pub fn write_fields(&self) -> Map<String, Value> {
        self.change
            .fields
            .iter()
            .filter_map(|f| match (&f.after, self.change.action) {
                (Some(v), _) => Some((f.name.clone(), Value::String(v.clone()))),
                (None, Action::Create) => None,
                (None, _) => Some((f.name.clone(), Value::Null)),
            })
            .collect()
    }

    fn email(&self) -> Option<String> {
        self.change
            .fields
            .iter()
            .find(|f| f.name == "Email")
            .and_then(|f| f.after.clone())
    }

    /// `create employees/E1001`.
    pub fn label(&self) -> String {
        format!(
            "{} {}/{}",
            self.change.action.as_str(),
            self.change.mapping,
            self.change.key
        )
    }

    fn audit(&self) -> String {
        format!(
            "carbonite-sync: {} {}/{}",
            self.change.action.as_str(),
            self.change.mapping,
            self.change.key
        )
    }
}

/// How one operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// Carbonite confirmed it.
    Done { account_id: String },
    /// A create whose answer was lost, found by Email and linked.
    Linked { account_id: String },
    /// A delete that found the account gone already.
    AlreadyGone,
    /// Carbonite refused it, or it could not be resolved.
    Failed {
        status: Option<u16>,
        message: String,
    },
    /// Not run: the rate budget ran out (next slot at the time given) or the run was stopped.
    NotRun { next_budget: Option<SystemTime> },
}

impl OpOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            OpOutcome::Done { .. } | OpOutcome::Linked { .. } | OpOutcome::AlreadyGone
        )
    }
}

/// Why the run stopped before the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// No rate budget before the deadline; the next slot frees at the time given.
    Budget(SystemTime),
    /// SIGINT/SIGTERM.
    Signal,
}

/// A stop request shared with signal handlers.
#[derive(Debug, Default)]
pub struct StopFlag {
    signalled: AtomicBool,
    budget: Mutex<Option<SystemTime>>,
}

impl StopFlag {
    pub fn signal(&self) {
        self.signalled.store(true, Ordering::SeqCst);
    }

    fn budget_exhausted(&self, next: SystemTime) {
        let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        *b = Some(b.map_or(next, |x| x.max(next)));
    }

    pub fn stop(&self) -> Option<Stop> {
        if self.signalled.load(Ordering::SeqCst) {
            return Some(Stop::Signal);
        }
        (*self.budget.lock().unwrap_or_else(|p| p.into_inner())).map(Stop::Budget)
    }
}

/// A failed orchestration step (the account change itself stands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookFailure {
    /// `create employees/E1001`.
    pub change: String,
    pub orchestration: String,
    pub webhook: String,
    pub message: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Every operation with its outcome, in execution order.
    pub results: Vec<(Operation, OpOutcome)>,
    pub stopped: Option<Stop>,
    /// Orchestration steps that failed.
    pub hook_failures: Vec<HookFailure>,
    /// Orchestration steps that ran and succeeded.
    pub hooks_sent: usize,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &(Operation, OpOutcome)> {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, OpOutcome::Failed { .. }))
    }

    pub fn not_run(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, OpOutcome::NotRun { .. }))
            .count()
    }

    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|(_, o)| o.succeeded()).count()
    }
}

/// Digests every journal record carries.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub plan_digest: Option<String>,
    pub config_digest: String,
    pub git_commit: Option<String>,
}

/// Everything the executor writes through.
pub struct Executor<'a> {
    pub client: &'a CarboniteClient,
    pub journal: &'a Journal,
    /// The observed-state cache, updated from every answer (saved by the caller).
    pub cache: Option<&'a Mutex<ObservedCache>>,
    pub state: &'a StateFiles,
    pub suspended: &'a Mutex<BTreeSet<String>>,
    pub info: RunInfo,
    pub concurrency: usize,
    pub stop: &'a StopFlag,
    /// Webhooks and orchestrations, when the plan triggers any.
    pub hooks: Option<&'a crate::webhook::Hooks>,
    /// The context orchestration templates start from (lookup tables).
    pub hook_context: crate::template::RenderContext,
    /// Outcomes of orchestration steps.
    pub hook_log: Mutex<(Vec<HookFailure>, usize)>,
}

/// The most creates attempted for one account in a run, each after a lookup found nothing.
const MAX_CREATE_ATTEMPTS: u32 = 3;

impl Executor<'_> {
    /// Run `ops` in §6.9 order (each action's operations concurrently, up to `concurrency`);
    /// `on_done` sees each outcome as it arrives.
    pub async fn run(
        &self,
        mut ops: Vec<Operation>,
        on_done: &(dyn Fn(&Operation, &OpOutcome) + Sync),
    ) -> Report {
        ops.sort_by(|a, b| {
            (a.change.action, &a.change.mapping, &a.change.key).cmp(&(
                b.change.action,
                &b.change.mapping,
                &b.change.key,
            ))
        });
        let mut report = Report::default();
        let mut rest = ops.into_iter().peekable();
        while let Some(first) = rest.next() {
            let action = first.change.action;
            let mut phase = vec![first];
            while let Some(op) = rest.next_if(|o| o.change.action == action) {
                phase.push(op);
            }
            let results: Vec<(Operation, OpOutcome)> = futures_util::stream::iter(phase)
                .map(|op| async move {
                    let outcome = match self.stop.stop() {
                        Some(Stop::Budget(t)) => OpOutcome::NotRun {
                            next_budget: Some(t),
                        },
                        Some(Stop::Signal) => OpOutcome::NotRun { next_budget: None },
                        None => self.run_one(&op).await,
                    };
                    on_done(&op, &outcome);
                    (op, outcome)
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
            report.results.extend(results);
        }
        // Execution order, then mapping and key: stable output whatever finished first.
        report.results.sort_by(|(a, _), (b, _)| {
            (a.change.action, &a.change.mapping, &a.change.key).cmp(&(
                b.change.action,
                &b.change.mapping,
                &b.change.key,
            ))
        });
        report.stopped = self.stop.stop();
        let (failures, sent) =
            std::mem::take(&mut *self.hook_log.lock().unwrap_or_else(|p| p.into_inner()));
        report.hook_failures = failures;
        report.hooks_sent = sent;
        report
    }

    fn intent(&self, op: &Operation, email: Option<String>) -> Intent {
        Intent {
            ts: now(),
            run: self.journal.run().to_string(),
            op: uuid::Uuid::new_v4().to_string(),
            action: op.change.action,
            mapping: op.change.mapping.clone(),
            key: op.change.key.clone(),
            account_id: op.change.account_id.clone(),
            email,
            fields: op.change.fields.iter().map(|f| f.name.clone()).collect(),
            plan_digest: self.info.plan_digest.clone(),
            config_digest: self.info.config_digest.clone(),
            git_commit: self.info.git_commit.clone(),
            step: None,
        }
    }

    fn result(&self, intent: &Intent, outcome: &OpOutcome) -> Result<(), String> {
        let (verdict, account_id, status, message) = match outcome {
            OpOutcome::Done { account_id } => (Verdict::Ok, Some(account_id.clone()), None, None),
            OpOutcome::Linked { account_id } => {
                (Verdict::Linked, Some(account_id.clone()), None, None)
            }
            OpOutcome::AlreadyGone => (Verdict::AlreadyGone, intent.account_id.clone(), None, None),
            OpOutcome::Failed { status, message } => (
                Verdict::Failed,
                intent.account_id.clone(),
                *status,
                Some(message.clone()),
            ),
            OpOutcome::NotRun { .. } => (Verdict::NotSent, intent.account_id.clone(), None, None),
        };
        self.journal
            .append(&Record::Result(OpResult {
                ts: now(),
                run: intent.run.clone(),
                op: intent.op.clone(),
                result: verdict,
                account_id,
                status,
                message,
            }))
            .map_err(|e| e.to_string())
    }

    async fn run_one(&self, op: &Operation) -> OpOutcome {
        let email = (op.change.action == Action::Create)
            .then(|| op.email())
            .flatten();
        let intent = self.intent(op, email.clone());
        if let Err(e) = self.journal.append(&Record::Intent(intent.clone())) {
            // Without a journal entry nothing is sent.
            return OpOutcome::Failed {
                status: None,
                message: format!("not sent: {e}"),
            };
        }
        let (outcome, journal_it, answered) = match op.change.action {
            Action::Create => self.create(op, email.as_deref()).await,
            Action::Delete => {
                let (o, a) = self.delete(op).await;
                (o, true, a)
            }
            _ => {
                let (o, a) = self.update(op).await;
                (o, true, a)
            }
        };
        if journal_it && let Err(e) = self.result(&intent, &outcome) {
            tracing::error!("{e}");
        }
        if outcome.succeeded() && !op.change.orchestrations.is_empty() {
            self.orchestrate(op, answered).await;
        }
        outcome
    }

    /// Run the orchestrations the plan attached to `op` (after its change succeeded), each
    /// step journaled; failures are recorded, never undo the change, and do not stop the
    /// orchestration's later steps from being skipped (a failed step ends its orchestration).
    async fn orchestrate(&self, op: &Operation, answered: Option<Map<String, Value>>) {
        let Some(hooks) = self.hooks else {
            return;
        };
        let mut ctx = self.hook_context.clone();
        if let Some(e) = &op.entry {
            ctx = ctx.with_entry(e.clone());
        }
        let account = match (answered, &op.account) {
            (Some(a), Some(Value::Object(before))) => {
                let mut merged = before.clone();
                merged.extend(a);
                Some(Value::Object(merged))
            }
            (Some(a), _) => Some(Value::Object(a)),
            (None, before) => before.clone(),
        };
        if let Some(a) = account {
            ctx = ctx.with_account(std::sync::Arc::new(a));
        }
        for name in &op.change.orchestrations {
            for webhook in hooks.steps(name) {
                let mut intent = self.intent(op, None);
                intent.step = Some(format!("{name}/{webhook}"));
                intent.fields = Vec::new();
                let result = match self.journal.append(&Record::Intent(intent.clone())) {
                    Err(e) => Err(format!("not sent: {e}")),
                    Ok(()) => match hooks.render(webhook, &ctx, self.client.base_url()) {
                        Err(e) => Err(e.to_string()),
                        Ok(req) => hooks
                            .send(&req, Some(self.client))
                            .await
                            .map(|r| r.status)
                            .map_err(|e| e.to_string()),
                    },
                };
                let (verdict, status, message) = match &result {
                    Ok(status) => (Verdict::Ok, Some(*status), None),
                    Err(m) => (Verdict::Failed, None, Some(m.clone())),
                };
                let _ = self.journal.append(&Record::Result(OpResult {
                    ts: now(),
                    run: intent.run.clone(),
                    op: intent.op.clone(),
                    result: verdict,
                    account_id: intent.account_id.clone(),
                    status,
                    message,
                }));
                let mut log = self.hook_log.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(_) => log.1 += 1,
                    Err(message) => {
                        log.0.push(HookFailure {
                            change: op.label(),
                            orchestration: name.clone(),
                            webhook: webhook.clone(),
                            message,
                        });
                        break;
                    }
                }
            }
        }
    }

    fn account_id<'o>(&self, op: &'o Operation) -> Result<&'o str, OpOutcome> {
        op.change.account_id.as_deref().ok_or(OpOutcome::Failed {
            status: None,
            message: "the plan has no account id for this change".into(),
        })
    }

    async fn update(&self, op: &Operation) -> (OpOutcome, Option<Map<String, Value>>) {
        let id = match self.account_id(op) {
            Ok(id) => id,
            Err(o) => return (o, None),
        };
        let fields = op.write_fields();
        match self.client.update_user(id, &fields, &op.audit()).await {
            Ok(account) => {
                self.cache_write(&account.id, Some(&account.fields), &[]);
                self.note_status(op, id);
                (
                    OpOutcome::Done {
                        account_id: account.id,
                    },
                    Some(account.fields),
                )
            }
            Err(e) => (self.client_failure(e), None),
        }
    }

    async fn delete(&self, op: &Operation) -> (OpOutcome, Option<Map<String, Value>>) {
        let id = match self.account_id(op) {
            Ok(id) => id,
            Err(o) => return (o, None),
        };
        match self.client.delete_user(id).await {
            Ok(found) => {
                self.cache_write(id, None, &[]);
                self.note_status(op, id);
                let outcome = match found {
                    DeleteOutcome::Deleted => OpOutcome::Done {
                        account_id: id.to_string(),
                    },
                    DeleteOutcome::AlreadyGone => OpOutcome::AlreadyGone,
                };
                (outcome, None)
            }
            Err(e) => (self.client_failure(e), None),
        }
    }

    /// A create; the bool says whether to journal the outcome (an unresolved unknown outcome
    /// leaves the intent open for the next run to resolve).
    async fn create(
        &self,
        op: &Operation,
        email: Option<&str>,
    ) -> (OpOutcome, bool, Option<Map<String, Value>>) {
        let fields = op.write_fields();
        let Some(email) = email else {
            return (
                OpOutcome::Failed {
                    status: None,
                    message: "no Email to create the account with".into(),
                },
                true,
                None,
            );
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reason = match self.client.create_user(&fields, &op.audit()).await {
                Ok(account) => {
                    self.cache_write(&account.id, Some(&account.fields), &op.endpoints);
                    return (
                        OpOutcome::Done {
                            account_id: account.id,
                        },
                        true,
                        Some(account.fields),
                    );
                }
                Err(CreateError::Rejected {
                    status, message, ..
                }) => {
                    let e = CreateError::Rejected {
                        email: email.to_string(),
                        status,
                        message,
                        field_errors: Default::default(),
                    };
                    return (
                        OpOutcome::Failed {
                            status: Some(status),
                            message: e.to_string(),
                        },
                        true,
                        None,
                    );
                }
                Err(CreateError::NotSent(e)) => return (self.client_failure(e), true, None),
                Err(CreateError::UnknownOutcome { reason, .. }) => reason,
            };
            tracing::info!(email, %reason, "create: outcome unknown, looking the account up");
            match resolve_create(self.client, email, &op.key_field, &op.change.key).await {
                Ok(Resolution::Found(item)) => {
                    let id = item.0.clone();
                    let found = item.1.clone();
                    let outcome = self.link(op, &fields, item).await;
                    let journal = !matches!(outcome, OpOutcome::NotRun { .. });
                    if matches!(outcome, OpOutcome::Linked { .. }) {
                        tracing::info!(email, account = %id, "create: linked the account found by Email");
                    }
                    return (outcome, journal, Some(found));
                }
                Ok(Resolution::None) if attempt < MAX_CREATE_ATTEMPTS => continue,
                Ok(Resolution::None) => {
                    return (
                        OpOutcome::Failed {
                            status: None,
                            message: format!(
                                "create user {email}: outcome unknown {attempt} times ({reason}) and no account found"
                            ),
                        },
                        true,
                        None,
                    );
                }
                Ok(Resolution::Conflict(why)) => {
                    return (
                        OpOutcome::Failed {
                            status: None,
                            message: format!(
                                "create user {email}: outcome unknown ({reason}); {why}"
                            ),
                        },
                        true,
                        None,
                    );
                }
                Err(e) => {
                    // Unresolved: leave the intent open; the next apply looks it up first.
                    let mut message = format!(
                        "create user {email}: outcome unknown ({reason}); the lookup failed: {e}; \
                         the next apply resolves it before anything else"
                    );
                    if let Some(next) = budget_stop(&e) {
                        self.stop.budget_exhausted(next);
                        message.push_str(" (rate budget exhausted)");
                    }
                    return (
                        OpOutcome::Failed {
                            status: None,
                            message,
                        },
                        false,
                        None,
                    );
                }
            }
        }
    }

    /// Link a create's account found by Email; write the fields it lacks (an account found
    /// without our key, or one whose fields differ).
    async fn link(
        &self,
        op: &Operation,
        fields: &Map<String, Value>,
        found: (String, Map<String, Value>),
    ) -> OpOutcome {
        let (id, have) = found;
        let differs: Map<String, Value> = fields
            .iter()
            .filter(|(k, v)| value_text(have.get(*k)) != value_text(Some(v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.cache_write(&id, Some(&have), &op.endpoints);
        if !differs.is_empty() {
            match self.client.update_user(&id, &differs, &op.audit()).await {
                Ok(account) => self.cache_write(&id, Some(&account.fields), &op.endpoints),
                Err(e) => {
                    return match self.client_failure(e) {
                        OpOutcome::Failed { status, message } => OpOutcome::Failed {
                            status,
                            message: format!(
                                "linked account {id}, but writing its fields failed: {message}"
                            ),
                        },
                        other => other,
                    };
                }
            }
        }
        OpOutcome::Linked { account_id: id }
    }

    fn client_failure(&self, e: ClientError) -> OpOutcome {
        if let Some(next) = budget_stop(&e) {
            self.stop.budget_exhausted(next);
            return OpOutcome::NotRun {
                next_budget: Some(next),
            };
        }
        let status = match &e {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        };
        OpOutcome::Failed {
            status,
            message: e.to_string(),
        }
    }

    fn cache_write(&self, id: &str, fields: Option<&Map<String, Value>>, new_in: &[String]) {
        if let Some(c) = self.cache {
            c.lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply_write(id, fields, new_in);
        }
    }

    /// Keep `suspended.json` current: written at once, so a crash never forgets an account
    /// this tool suspended.
    fn note_status(&self, op: &Operation, id: &str) {
        let mut s = self.suspended.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match op.change.action {
            Action::Suspend => s.insert(id.to_string()),
            Action::Reactivate | Action::Delete => s.remove(id),
            _ => false,
        };
        if changed && let Err(e) = self.state.write_suspended(&s) {
            tracing::error!("cannot record suspended accounts: {e}");
        }
    }
}

/// What a lookup by Email found for a create of `key`.
pub enum Resolution {
    /// Exactly one account whose key is ours or empty: (id, fields).
    Found((String, Map<String, Value>)),
    /// No account with that Email.
    None,
    /// Several, or one with another key.
    Conflict(String),
}

/// Look a create up by Email (SPEC §8): exactly one match whose key is ours or empty -> found.
pub async fn resolve_create(
    client: &CarboniteClient,
    email: &str,
    key_field: &str,
    key: &str,
) -> Result<Resolution, ClientError> {
    let items = client.find_by_email(email).await?;
    let matching: Vec<_> = items
        .into_iter()
        .map(|i| (i.value(), i.id))
        .filter(|(value, _)| {
            value
                .get("Email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .collect();
    match matching.as_slice() {
        [] => Ok(Resolution::None),
        [one] => {
            let theirs = value_text(one.0.get(key_field));
            let Some(id) = one.1.clone() else {
                return Ok(Resolution::Conflict(format!(
                    "the account found by Email {email} has no id"
                )));
            };
            if theirs.is_empty() || theirs == key {
                let fields = one.0.as_object().cloned().unwrap_or_default();
                Ok(Resolution::Found((id, fields)))
            } else {
                Ok(Resolution::Conflict(format!(
                    "account {id} has Email {email} but {key_field} `{theirs}`, not `{key}`"
                )))
            }
        }
        many => Ok(Resolution::Conflict(format!(
            "{} accounts have Email {email}",
            many.len()
        ))),
    }
}

/// A value as text: null and absent are "".
fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One line per finished operation; `true` when it deserves attention.
pub fn describe(op: &Operation, o: &OpOutcome) -> (String, bool) {
    match o {
        OpOutcome::Done { account_id } => (format!("{}: ok ({account_id})", op.label()), false),
        OpOutcome::Linked { account_id } => (
            format!("{}: linked existing account {account_id}", op.label()),
            true,
        ),
        OpOutcome::AlreadyGone => (format!("{}: already gone", op.label()), false),
        OpOutcome::Failed { message, .. } => (format!("{}: FAILED: {message}", op.label()), true),
        OpOutcome::NotRun { .. } => (format!("{}: not run", op.label()), false),
    }
}

/// When an error means "no rate budget now": the time the next slot frees.
pub fn budget_stop(e: &ClientError) -> Option<SystemTime> {
    match e {
        ClientError::Budget { source, .. } => Some(source.next_at),
        ClientError::RateLimited { retry_at, .. } => Some(*retry_at),
        _ => None,
    }
}

fn now() -> String {
    crate::pass::rfc3339(SystemTime::now())
}

/// Resolve the intents earlier runs left without a result (a crash, a kill, a lookup that
/// failed): creates are looked up by Email — one match whose key is ours or empty is linked
/// (and filed in the cache), none means it never happened (`abandoned`: the plan decides
/// afresh); other writes are idempotent and simply re-planned (`abandoned`). Returns
/// (resolved, linked) counts. An intent whose lookup fails stays open.
pub async fn resolve_open_intents(
    client: &CarboniteClient,
    journal: &Journal,
    cfg: &Config,
    cache: Option<&Mutex<ObservedCache>>,
) -> Result<(usize, usize), String> {
    let state_dir = journal
        .path()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let open = Journal::open_intents(&state_dir).map_err(|e| e.to_string())?;
    let (mut resolved, mut linked) = (0, 0);
    for intent in open {
        let mapping = cfg.mappings.iter().find(|m| m.name == intent.mapping);
        let (verdict, account_id, message) = match (&intent.action, &intent.email, mapping) {
            (Action::Create, Some(email), Some(m)) if intent.step.is_none() => {
                match resolve_create(client, email, &m.primary_key.carbonite, &intent.key).await {
                    Ok(Resolution::Found((id, fields))) => {
                        if let Some(c) = cache {
                            c.lock().unwrap_or_else(|p| p.into_inner()).apply_write(
                                &id,
                                Some(&fields),
                                &m.endpoints,
                            );
                        }
                        linked += 1;
                        (Verdict::Linked, Some(id), None)
                    }
                    Ok(Resolution::None) => (
                        Verdict::Abandoned,
                        None,
                        Some("no account with this Email: the create never happened".to_string()),
                    ),
                    Ok(Resolution::Conflict(why)) => (Verdict::Failed, None, Some(why)),
                    Err(e) => {
                        return Err(format!(
                            "cannot resolve the open create of {}/{} from run {}: {e}",
                            intent.mapping, intent.key, intent.run
                        ));
                    }
                }
            }
            _ if intent.step.is_some() => (
                Verdict::Abandoned,
                intent.account_id.clone(),
                Some(
                    "webhook interrupted; its outcome is unknown and it is not sent again"
                        .to_string(),
                ),
            ),
            _ => (
                Verdict::Abandoned,
                intent.account_id.clone(),
                Some("interrupted; re-planned by this run".to_string()),
            ),
        };
        journal
            .append(&Record::Result(OpResult {
                ts: now(),
                run: journal.run().to_string(),
                op: intent.op.clone(),
                result: verdict,
                account_id,
                status: None,
                message,
            }))
            .map_err(|e| e.to_string())?;
        resolved += 1;
    }
    Ok((resolved, linked))
}
