//! The validated config model: what the rest of the program sees. Every default is applied and
//! every reference resolved; wrong states are not representable where it is cheap to do so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::diag::SourceMap;
use super::rate::Rate;
pub use super::raw::{
    CompareRaw as Compare, Flavor, MessageType, Orphans, PaginationStyle, StrengthRaw as Strength,
    UndefinedMode,
};
use super::secret::SecretRef;

/// A loaded, validated config directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config dir as given.
    pub dir: PathBuf,
    /// Every file read (YAML and the LDIF source), for diagnostics and the digest.
    pub sources: SourceMap,
    pub integration: Integration,
    /// Sorted by name.
    pub mappings: Vec<Mapping>,
    /// Built-in endpoints overlaid with user documents, by name.
    pub endpoints: BTreeMap<String, Endpoint>,
    pub webhooks: BTreeMap<String, Webhook>,
    /// Sorted by name.
    pub orchestrations: Vec<Orchestration>,
}

#[derive(Debug, Clone)]
pub struct Integration {
    pub name: String,
    pub directory: Directory,
    pub carbonite: Carbonite,
    pub policy: Policy,
    pub templates: Templates,
}

/// The directory source and its flavor.
#[derive(Debug, Clone)]
pub struct Directory {
    pub flavor: Flavor,
    /// The effective disabled filter (flavor default unless set); `None`: never disabled.
    pub disabled_filter: Option<String>,
    pub source: DirectorySource,
}

impl Directory {
    pub fn base_dn(&self) -> &str {
        match &self.source {
            DirectorySource::Ldap(l) => &l.base_dn,
            DirectorySource::Ldif { base_dn, .. } => base_dn,
        }
    }
}

#[derive(Debug, Clone)]
pub enum DirectorySource {
    Ldap(LdapSettings),
    Ldif {
        /// Absolute (resolved against the config dir).
        path: PathBuf,
        base_dn: String,
    },
}

#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub url: String,
    pub start_tls: bool,
    pub bind_dn: Option<String>,
    pub password: Option<SecretRef>,
    pub base_dn: String,
    pub page_size: u32,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Flavor facts (SPEC §2).
impl Flavor {
    /// The attribute holding an entry's immutable identity; `None`: the DN.
    pub fn anchor_attribute(self) -> Option<&'static str> {
        match self {
            Flavor::ActiveDirectory => Some("objectGUID"),
            Flavor::Openldap => Some("entryUUID"),
            Flavor::Generic => None,
        }
    }

    /// The change marker used by incremental reads.
    pub fn change_marker(self) -> Option<&'static str> {
        match self {
            Flavor::ActiveDirectory => Some("uSNChanged"),
            Flavor::Openldap => Some("entryCSN"),
            Flavor::Generic => None,
        }
    }

    pub fn default_disabled_filter(self) -> Option<&'static str> {
        match self {
            Flavor::ActiveDirectory => Some("(userAccountControl:1.2.840.113556.1.4.803:=2)"),
            Flavor::Openldap => Some("(pwdAccountLockedTime=*)"),
            Flavor::Generic => None,
        }
    }

    /// Attributes whose values are always bytes.
    pub fn binary_attributes(self) -> &'static [&'static str] {
        match self {
            Flavor::ActiveDirectory => &["objectGUID", "objectSid"],
            _ => &[],
        }
    }

    pub fn is_binary(self, attr: &str) -> bool {
        self.binary_attributes()
            .iter()
            .any(|b| b.eq_ignore_ascii_case(attr))
    }
}

#[derive(Debug, Clone)]
pub struct Carbonite {
    pub target: CarboniteTarget,
    pub auth: Option<Auth>,
    pub rate_limits: RateLimits,
    pub concurrency: u32,
    pub timeout: Duration,
    pub routes: Routes,
    pub extra_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarboniteTarget {
    /// A real tenant (from `region` or `baseUrl`), without trailing slash.
    Url(String),
    /// The in-process emulator; `seed` resolved against the config dir.
    Emulator { seed: Option<PathBuf> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    ApiKey { email: String, secret: SecretRef },
    BearerToken(SecretRef),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_route: Rate,
    pub user_creates: Rate,
}

/// A write route: METHOD and path template (`PUT /api/users/{UserId}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub get_user: Route,
    pub create_user: Route,
    pub update_user: Route,
    pub delete_user: Route,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub create: bool,
    pub update: bool,
    pub orphans: Orphans,
    pub max_destructive_count: Option<u64>,
    pub max_destructive_percent: Option<f64>,
    pub min_source_entries: u64,
    pub max_source_shrink_percent: f64,
}

#[derive(Debug, Clone)]
pub struct Templates {
    pub undefined: UndefinedMode,
    /// Named formats, by name.
    pub formats: BTreeMap<String, String>,
}

/// LDAP search scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Base,
    One,
    Subtree,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub source: SourceSpec,
    /// Endpoint names (at least one).
    pub endpoints: Vec<String>,
    pub primary_key: KeyPair,
    pub correlate: Vec<Correlate>,
    /// In YAML order.
    pub attributes: Vec<AttributeRule>,
}

/// A directory search.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceSpec {
    pub base_dn: String,
    pub scope: Scope,
    pub filter: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub ldap: String,
    pub carbonite: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlate {
    pub ldap: String,
    pub carbonite: String,
    pub compare: Compare,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRule {
    /// Carbonite field.
    pub field: String,
    /// Template source.
    pub value: String,
    pub compare: Compare,
    pub create_only: bool,
    pub strength: Strength,
    pub omit_if_empty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointTarget {
    /// Relative to the Carbonite base URL.
    Path(String),
    /// Absolute.
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pagination {
    pub style: PaginationStyle,
    pub param: Option<String>,
    pub start: i64,
    pub size_param: Option<String>,
    pub size: Option<u32>,
    /// JSON pointer to the total count.
    pub total: Option<String>,
    /// JSON pointer to the next link.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub method: String,
    pub target: EndpointTarget,
    /// Templates.
    pub query: Vec<(String, String)>,
    /// Templates.
    pub headers: Vec<(String, String)>,
    pub pagination: Pagination,
    /// JSON pointer to the items array.
    pub items: String,
    /// JSON pointer to an item's id.
    pub id: Option<String>,
    pub for_each_company: bool,
    /// Shipped with the binary (not overridden by a user document).
    pub builtin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookTarget {
    /// An absolute URL template.
    Url(String),
    /// A path template on the Carbonite base URL, with its token and ledger.
    Carbonite { path: String },
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub method: String,
    pub target: WebhookTarget,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub timeout: Duration,
    pub message_type: MessageType,
    pub body: Option<String>,
    /// Empty: any 2xx.
    pub expect_status: Vec<u16>,
}

/// Events an orchestration listens to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Created,
    Adopted,
    Updated,
    Suspended,
    Reactivated,
    Deleted,
    Changed(String),
}

impl Event {
    pub const NAMES: &'static [&'static str] = &[
        "created",
        "adopted",
        "updated",
        "suspended",
        "reactivated",
        "deleted",
        "changed:<Field>",
    ];

    pub fn parse(s: &str) -> Option<Event> {
        Some(match s {
            "created" => Event::Created,
            "adopted" => Event::Adopted,
            "updated" => Event::Updated,
            "suspended" => Event::Suspended,
            "reactivated" => Event::Reactivated,
            "deleted" => Event::Deleted,
            _ => {
                return s
                    .strip_prefix("changed:")
                    .filter(|f| !f.is_empty())
                    .map(|f| Event::Changed(f.to_string()));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Orchestration {
    pub name: String,
    pub on: Vec<Event>,
    /// A minijinja expression.
    pub when: Option<String>,
    /// Webhook names, in order.
    pub steps: Vec<String>,
}

/// The fields of §5's User object.
pub const USER_FIELDS: &[&str] = &[
    "UserId",
    "Email",
    "FirstName",
    "LastName",
    "CompanyId",
    "UserGroupId",
    "UserCustom1",
    "UserCustom2",
    "UserCustom3",
    "Status",
];

/// User fields holding GUIDs (always compared case-insensitively).
pub const GUID_FIELDS: &[&str] = &["UserId", "CompanyId", "UserGroupId"];
