//! The plan as data: what would change, what is held back, and why. Rendering (text, markdown,
//! JSON) and executing are separate consumers of this.

use serde::{Deserialize, Serialize};

/// Actions, in execution order (SPEC §6.9).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Adopt,
    Create,
    Update,
    Reactivate,
    Suspend,
    Delete,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Adopt,
        Action::Create,
        Action::Update,
        Action::Reactivate,
        Action::Suspend,
        Action::Delete,
    ];

    pub fn is_destructive(self) -> bool {
        matches!(self, Action::Suspend | Action::Delete)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Adopt => "adopt",
            Action::Create => "create",
            Action::Update => "update",
            Action::Reactivate => "reactivate",
            Action::Suspend => "suspend",
            Action::Delete => "delete",
        }
    }
}

/// One field of a change. `None` is absent, null and "" alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldChange {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One planned operation on one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub action: Action,
    pub mapping: String,
    pub key: String,
    /// The directory entry; `None` for orphans whose user is gone.
    pub dn: Option<String>,
    /// The observed account; `None` for creates.
    pub account_id: Option<String>,
    /// `sha256:` of the observed account's canonical form; `None` for creates.
    pub observed_fingerprint: Option<String>,
    /// Orchestrations whose trigger and `when` held at plan time.
    pub orchestrations: Vec<String>,
    pub fields: Vec<FieldChange>,
}

/// Why an entry or account is excluded (and its key held).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    EmptyKey,
    DuplicateKeySource,
    DuplicateKeyObserved,
    AmbiguousCorrelation,
    MultipleMappings,
    RenderError,
    LookupFailed,
    RequiredFieldEmpty,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::EmptyKey => "empty_key",
            ConflictKind::DuplicateKeySource => "duplicate_key_source",
            ConflictKind::DuplicateKeyObserved => "duplicate_key_observed",
            ConflictKind::AmbiguousCorrelation => "ambiguous_correlation",
            ConflictKind::MultipleMappings => "multiple_mappings",
            ConflictKind::RenderError => "render_error",
            ConflictKind::LookupFailed => "lookup_failed",
            ConflictKind::RequiredFieldEmpty => "required_field_empty",
        }
    }
}

/// One excluded entry or account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Conflict {
    pub kind: ConflictKind,
    pub mapping: Option<String>,
    pub key: Option<String>,
    pub dn: Option<String>,
    pub account_id: Option<String>,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardStatus {
    Ok,
    Refused,
    NoBaseline,
    Overridden,
}

/// The verdict of one guard.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Guard {
    pub name: String,
    pub mapping: Option<String>,
    pub status: GuardStatus,
    pub detail: String,
}

/// Counts per action and of the other outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub create: usize,
    pub adopt: usize,
    pub update: usize,
    pub reactivate: usize,
    pub suspend: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub conflict: usize,
    pub unmanaged: usize,
}

impl Summary {
    pub fn count(&mut self, a: Action) -> &mut usize {
        match a {
            Action::Adopt => &mut self.adopt,
            Action::Create => &mut self.create,
            Action::Update => &mut self.update,
            Action::Reactivate => &mut self.reactivate,
            Action::Suspend => &mut self.suspend,
            Action::Delete => &mut self.delete,
        }
    }

    pub fn changes(&self) -> usize {
        self.create + self.adopt + self.update + self.reactivate + self.suspend + self.delete
    }
}

/// The result of a reconcile pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Sorted by execution order, then mapping, then key.
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
    pub guards: Vec<Guard>,
    pub summary: Summary,
    /// Destructive changes that a guard refused (not in `changes`).
    pub held_back: Vec<Change>,
    /// `minSourceEntries` refused the whole run: `changes` is empty.
    pub run_refused: bool,
}

impl Plan {
    /// A guard refused something: the whole run, or a destructive change it would have made.
    pub fn refused(&self) -> bool {
        self.run_refused || !self.held_back.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}
