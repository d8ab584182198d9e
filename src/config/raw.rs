//! Raw config documents exactly as written in YAML: serde + JSON Schema types.
//!
//! Only this module derives `Deserialize`/`JsonSchema`; the rest of the program sees the
//! validated model (`config::model`). Doc comments here become the schema descriptions users
//! see in their editor. Values that later checks must point at are wrapped in [`Sp`].

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::node::Sp;

/// The only supported `apiVersion`.
pub const API_VERSION: &str = "carbonite-sync/v1";

/// The document kinds.
pub const KINDS: &[&str] = &[
    "Integration",
    "Mapping",
    "Endpoint",
    "Webhook",
    "Orchestration",
];

/// A config document: `apiVersion`, `kind`, `metadata`, `spec` (all required).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(bound = "S: JsonSchema")]
pub struct Document<S> {
    /// Always `carbonite-sync/v1`.
    #[schemars(schema_with = "api_version_schema")]
    pub api_version: Sp<String>,
    /// The document kind.
    pub kind: Sp<String>,
    /// Name, description and labels.
    pub metadata: Metadata,
    /// The kind-specific body.
    pub spec: S,
}

fn api_version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"const": API_VERSION, "description": "Always `carbonite-sync/v1`."})
}

/// Identifies a document.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Unique per kind; a DNS label (lowercase letters, digits and `-`, at most 63).
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub name: Sp<String>,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form key/value labels.
    #[serde(default)]
    pub labels: OrderedMap<String>,
}

// ---------------------------------------------------------------------------------------------
// Shared value types

/// A map that keeps YAML order and the location of every key.
#[derive(Debug, Clone)]
pub struct OrderedMap<V>(pub Vec<(Sp<String>, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = &(Sp<String>, V)> {
        self.0.iter()
    }
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Sp<String>>()? {
                    let v = map.next_value()?;
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "object", "additionalProperties": g.subschema_for::<V>()})
    }
}

/// A reference to a secret: `{ env: NAME }` or `{ file: path }`. Never a literal.
#[derive(Debug, Clone)]
pub enum SecretRefRaw {
    /// `{ env: NAME }`
    Env(Sp<String>),
    /// `{ file: path }` (relative to the config dir; one trailing newline stripped)
    File(Sp<String>),
    /// A plain value where a reference was expected: always an error (the value is dropped).
    Literal,
    /// A mapping with neither or both keys.
    Invalid(String),
}

impl<'de> Deserialize<'de> for SecretRefRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ref {
            env: Option<Sp<String>>,
            file: Option<Sp<String>>,
        }
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = SecretRefRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret reference `{ env: NAME }` or `{ file: path }`")
            }
            fn visit_str<E>(self, _: &str) -> Result<SecretRefRaw, E> {
                Ok(SecretRefRaw::Literal)
            }
            fn visit_string<E>(self, _: String) -> Result<SecretRefRaw, E> {
                Ok(SecretRefRaw::Literal)
            }
            fn visit_i64<E>(self, _: i64) -> Result<SecretRefRaw, E> {
                Ok(SecretRefRaw::Literal)
            }
            fn visit_u64<E>(self, _: u64) -> Result<SecretRefRaw, E> {
                Ok(SecretRefRaw::Literal)
            }
            fn visit_f64<E>(self, _: f64) -> Result<SecretRefRaw, E> {
                Ok(SecretRefRaw::Literal)
            }
            fn visit_bool<E>(self, _: bool) -> Result<SecretRefRaw, E> {
                Ok(SecretRefRaw::Literal)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<SecretRefRaw, A::Error> {
                let r = Ref::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(match (r.env, r.file) {
                    (Some(e), None) => SecretRefRaw::Env(e),
                    (None, Some(f)) => SecretRefRaw::File(f),
                    (Some(_), Some(_)) => {
                        SecretRefRaw::Invalid("give either `env` or `file`, not both".into())
                    }
                    (None, None) => {
                        SecretRefRaw::Invalid("a secret reference needs `env` or `file`".into())
                    }
                })
            }
        }
        d.deserialize_any(Vis)
    }
}

impl JsonSchema for SecretRefRaw {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A secret reference: `{ env: NAME }` (environment variable) or `{ file: path }` (file relative to the config dir, one trailing newline stripped). Never a literal value.",
            "oneOf": [
                {"type": "object", "properties": {"env": {"type": "string", "minLength": 1}}, "required": ["env"], "additionalProperties": false},
                {"type": "object", "properties": {"file": {"type": "string", "minLength": 1}}, "required": ["file"], "additionalProperties": false}
            ]
        })
    }
}

/// A value given either as one string or a list of strings.
#[derive(Debug, Clone)]
pub struct OneOrMany(pub Vec<Sp<String>>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Deserialize through a located value so a single string keeps its location.
        let v: Sp<OneOrManyInner> = Sp::deserialize(d)?;
        Ok(match v.value {
            OneOrManyInner::One(s) => OneOrMany(vec![Sp::new(s, v.loc)]),
            OneOrManyInner::Many(items) => OneOrMany(items),
        })
    }
}

enum OneOrManyInner {
    One(String),
    Many(Vec<Sp<String>>),
}

impl<'de> Deserialize<'de> for OneOrManyInner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = OneOrManyInner;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E>(self, s: &str) -> Result<OneOrManyInner, E> {
                Ok(OneOrManyInner::One(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<OneOrManyInner, E> {
                Ok(OneOrManyInner::One(s))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrManyInner, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element()? {
                    v.push(s);
                }
                Ok(OneOrManyInner::Many(v))
            }
        }
        d.deserialize_any(Vis)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]})
    }
}

/// Marker for string fields holding a humantime duration (`500ms`, `30s`, `1h30m`).
fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "description": "A duration: `500ms`, `30s`, `1h30m`.", "pattern": r"^\s*\d"})
}

/// Marker for string fields holding a rate `N/DURATION` (`50/1h`).
fn rate_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "description": "A rate `N/DURATION`: at most N calls in any window of DURATION, e.g. `50/1h`, `5/2s`.", "pattern": r"^\s*\d+\s*/\s*\S+\s*$"})
}

// ---------------------------------------------------------------------------------------------
// Integration

/// How to reach AD and Carbonite, and the safety policy. Exactly one per config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationSpec {
    /// The directory (AD, OpenLDAP, or an LDIF file).
    pub directory: Sp<DirectoryRaw>,
    /// The Carbonite tenant (or the in-process emulator).
    pub carbonite: Sp<CarboniteRaw>,
    /// What the reconciler may do.
    #[serde(default)]
    pub policy: PolicyRaw,
    /// Template settings.
    #[serde(default)]
    pub templates: TemplatesRaw,
    /// Named reusable templates ("custom formats"): `{{ formats.corpEmail }}` or `format('corpEmail')`.
    #[serde(default)]
    pub formats: OrderedMap<Sp<String>>,
}

/// The directory flavor: decides the anchor, change marker, disabled filter and binary attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// Active Directory: anchor `objectGUID`, change marker `uSNChanged`, binary `objectGUID`/`objectSid`.
    ActiveDirectory,
    /// OpenLDAP: anchor `entryUUID`, change marker `entryCSN`.
    Openldap,
    /// Any LDAP server: anchor is the DN, no change marker.
    #[default]
    Generic,
}

/// The directory source: exactly one of `ldap` or `ldif`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryRaw {
    /// `active-directory`, `openldap` or `generic` (default).
    #[serde(default)]
    pub flavor: Option<Sp<Flavor>>,
    /// LDAP filter marking disabled users, evaluated client-side on each entry. Default per flavor.
    #[serde(default)]
    pub disabled_filter: Option<Sp<String>>,
    /// A live LDAP server.
    #[serde(default)]
    pub ldap: Option<Sp<LdapRaw>>,
    /// An offline LDIF file (RFC 2849).
    #[serde(default)]
    pub ldif: Option<Sp<LdifRaw>>,
}

/// Connection to an LDAP server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LdapRaw {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: Sp<String>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub start_tls: Option<bool>,
    /// DN to bind as (simple bind); Active Directory also takes `user@domain` or
    /// `DOMAIN\user`. Omit for an anonymous bind.
    #[serde(default)]
    pub bind_dn: Option<Sp<String>>,
    /// Bind password: a secret reference.
    #[serde(default)]
    pub password: Option<Sp<SecretRefRaw>>,
    /// Search base for mappings that do not set their own.
    pub base_dn: Sp<String>,
    /// Paged-results page size (default 1000).
    #[serde(default)]
    pub page_size: Option<Sp<i64>>,
    /// Connect and operation timeout (default `30s`).
    #[serde(default)]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Sp<String>>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsRaw>,
}

/// TLS settings for LDAP.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRaw {
    /// PEM file with the CA certificate(s) to trust (relative to the config dir).
    #[serde(default)]
    pub ca_file: Option<Sp<String>>,
    /// Skip certificate verification. For lab use only.
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
}

/// An offline LDIF source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LdifRaw {
    /// Path of the LDIF file, relative to the config dir.
    pub path: Sp<String>,
    /// The directory's base DN.
    pub base_dn: Sp<String>,
}

/// Carbonite regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// https://red-us.mysecuredatavault.com
    Us,
    /// https://red-emea.mysecuredatavault.com
    Emea,
    /// https://red-apac.mysecuredatavault.com
    Apac,
    /// https://red-fr.mysecuredatavault.com
    Fr,
}

fn region_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"enum": ["us", "emea", "apac", "fr"], "description": "`us`, `emea`, `apac` or `fr` -> https://red-<region>.mysecuredatavault.com"})
}

impl Region {
    /// The region names.
    pub const NAMES: &'static [&'static str] = &["us", "emea", "apac", "fr"];

    pub fn parse(s: &str) -> Option<Region> {
        Some(match s {
            "us" => Region::Us,
            "emea" => Region::Emea,
            "apac" => Region::Apac,
            "fr" => Region::Fr,
            _ => return None,
        })
    }

    pub fn base_url(self) -> String {
        let r = match self {
            Region::Us => "us",
            Region::Emea => "emea",
            Region::Apac => "apac",
            Region::Fr => "fr",
        };
        format!("https://red-{r}.mysecuredatavault.com")
    }
}

/// The Carbonite tenant: exactly one of `region`, `baseUrl` or `emulator`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CarboniteRaw {
    /// `us`, `emea`, `apac` or `fr`.
    #[serde(default)]
    #[schemars(schema_with = "region_schema")]
    pub region: Option<Sp<String>>,
    /// Base URL instead of a region (white-label vaults).
    #[serde(default)]
    pub base_url: Option<Sp<String>>,
    /// Run the in-process emulator instead of calling a real tenant.
    #[serde(default)]
    pub emulator: Option<Sp<EmulatorRaw>>,
    /// Credentials: exactly one of `apiKey` or `bearerToken` (optional with the emulator).
    #[serde(default)]
    pub auth: Option<Sp<AuthRaw>>,
    /// Client-side rate limits (defaults are the vendor's published limits).
    #[serde(default)]
    pub rate_limits: Option<RateLimitsRaw>,
    /// Concurrent API calls (default 4).
    #[serde(default)]
    pub concurrency: Option<Sp<i64>>,
    /// Per-request timeout (default `30s`).
    #[serde(default)]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Sp<String>>,
    /// Overrides of the write routes: `getUser`, `createUser`, `updateUser`, `deleteUser`,
    /// e.g. `updateUser: "PATCH /api/users/{UserId}"`.
    #[serde(default)]
    pub routes: OrderedMap<Sp<String>>,
    /// Account fields beyond the built-in User fields that mappings may write.
    #[serde(default)]
    pub extra_fields: Vec<Sp<String>>,
}

/// The in-process emulator.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmulatorRaw {
    /// Seed file (JSON), loaded when the state dir has no emulator state yet.
    #[serde(default)]
    pub seed: Option<Sp<String>>,
}

/// Carbonite credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthRaw {
    /// Exchange an API key for a bearer token (`POST /api/tokens/apikey`).
    #[serde(default)]
    pub api_key: Option<ApiKeyRaw>,
    /// A ready-made bearer token.
    #[serde(default)]
    pub bearer_token: Option<Sp<SecretRefRaw>>,
}

/// An API key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyRaw {
    /// The admin email the key belongs to.
    pub email: Sp<String>,
    /// The API key secret: a secret reference.
    pub secret: Sp<SecretRefRaw>,
}

/// Client-side rate limits.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitsRaw {
    /// Per route (METHOD + path template). Default `50/1h`.
    #[serde(default)]
    #[schemars(schema_with = "rate_schema")]
    pub per_route: Option<Sp<String>>,
    /// User creations. Default `100/1h`.
    #[serde(default)]
    #[schemars(schema_with = "rate_schema")]
    pub user_creates: Option<Sp<String>>,
}

/// What to do with accounts whose user left the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Orphans {
    /// Leave them alone (default).
    #[default]
    Ignore,
    /// Set `Status: Suspended`.
    Suspend,
    /// Delete the account.
    Delete,
}

/// What the reconciler may do.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRaw {
    /// Create accounts for new users (default true).
    #[serde(default)]
    pub create: Option<bool>,
    /// Update accounts whose mapped fields changed (default true).
    #[serde(default)]
    pub update: Option<bool>,
    /// `ignore` (default), `suspend` or `delete`.
    #[serde(default)]
    pub orphans: Option<Orphans>,
    /// Upper bound of suspends + deletes per run. Omitting one bound disables only that bound.
    #[serde(default)]
    pub max_destructive: Option<Sp<MaxDestructiveRaw>>,
    /// Per mapping: fewer entries than this refuses the whole run (default 1).
    #[serde(default)]
    pub min_source_entries: Option<Sp<i64>>,
    /// Per mapping: a shrink of more than this percentage against the baseline refuses
    /// destructive actions (default 20).
    #[serde(default)]
    pub max_source_shrink_percent: Option<Sp<f64>>,
}

/// Bounds on destructive actions per run.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaxDestructiveRaw {
    /// At most this many suspends + deletes (default 25 when the block is omitted).
    #[serde(default)]
    pub count: Option<Sp<i64>>,
    /// At most this percentage of managed accounts (default 5 when the block is omitted).
    #[serde(default)]
    pub percent: Option<Sp<f64>>,
}

/// How undefined template variables behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum UndefinedMode {
    /// Undefined names render as empty (default).
    #[default]
    Lenient,
    /// Undefined names are errors.
    Strict,
}

/// Template settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplatesRaw {
    /// `lenient` (default) or `strict`.
    #[serde(default)]
    pub undefined: Option<UndefinedMode>,
}

// ---------------------------------------------------------------------------------------------
// Mapping

/// LDAP search scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScopeRaw {
    /// The base entry only.
    Base,
    /// Direct children of the base.
    One,
    /// The base and everything below it (default).
    #[default]
    Subtree,
}

/// How two values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum CompareRaw {
    /// Byte for byte (default).
    #[default]
    Exact,
    /// Ignoring case.
    CaseInsensitive,
    /// Ignoring leading and trailing white space.
    Trimmed,
}

/// `strong` rules are always enforced; `weak` rules only fill an empty field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum StrengthRaw {
    /// Always enforce (default).
    #[default]
    Strong,
    /// Only set when the account's field is empty.
    Weak,
}

/// Maps directory entries onto Carbonite accounts ("Data Source – LDAP attribute mapping").
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingSpec {
    /// Which entries this mapping manages.
    pub source: Sp<SourceRaw>,
    /// Inbound endpoint(s) listing the observed accounts (default `carbonite-users`).
    #[serde(default)]
    pub endpoint: Option<Sp<OneOrMany>>,
    /// The join between entries and accounts; written on create and adopt.
    pub primary_key: Sp<KeyPairRaw>,
    /// Ordered fallback matching for accounts that lack the key: a single match is adopted.
    #[serde(default)]
    pub correlate: Vec<Sp<CorrelateRaw>>,
    /// Carbonite field -> template string or rule.
    #[serde(default)]
    pub attributes: OrderedMap<Sp<AttributeRuleRaw>>,
}

/// Which entries a mapping reads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRaw {
    /// Search base (default: the directory's baseDn).
    #[serde(default)]
    pub base_dn: Option<Sp<String>>,
    /// `base`, `one` or `subtree` (default).
    #[serde(default)]
    pub scope: Option<ScopeRaw>,
    /// LDAP filter (RFC 4515). Required.
    pub filter: Sp<String>,
}

/// An LDAP attribute and a Carbonite field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPairRaw {
    /// LDAP attribute name.
    pub ldap: Sp<String>,
    /// Carbonite account field.
    pub carbonite: Sp<String>,
}

/// A correlation rule for adopting existing accounts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorrelateRaw {
    /// LDAP attribute name.
    pub ldap: Sp<String>,
    /// Carbonite account field.
    pub carbonite: Sp<String>,
    /// How values are compared (default `exact`).
    #[serde(default)]
    pub compare: Option<CompareRaw>,
}

/// A field rule: a template string, or the full form.
#[derive(Debug)]
pub enum AttributeRuleRaw {
    /// Shorthand: the template, all options at their defaults.
    Template(String),
    /// The full form.
    Rule(AttributeRuleFull),
}

/// The full form of a field rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeRuleFull {
    /// The template giving the field's value.
    pub value: Sp<String>,
    /// `exact` (default), `caseInsensitive` or `trimmed`. GUID-valued fields always compare
    /// case-insensitively.
    #[serde(default)]
    pub compare: Option<CompareRaw>,
    /// Set at create (and adopt when empty), never updated.
    #[serde(default)]
    pub create_only: Option<bool>,
    /// `strong` (default) or `weak`.
    #[serde(default)]
    pub strength: Option<StrengthRaw>,
    /// Do not write the field when the template renders empty.
    #[serde(default)]
    pub omit_if_empty: Option<bool>,
}

impl<'de> Deserialize<'de> for AttributeRuleRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = AttributeRuleRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a template string or a rule with `value`")
            }
            fn visit_str<E>(self, s: &str) -> Result<AttributeRuleRaw, E> {
                Ok(AttributeRuleRaw::Template(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<AttributeRuleRaw, E> {
                Ok(AttributeRuleRaw::Template(s))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AttributeRuleRaw, E> {
                Ok(AttributeRuleRaw::Template(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<AttributeRuleRaw, E> {
                Ok(AttributeRuleRaw::Template(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AttributeRuleRaw, A::Error> {
                AttributeRuleFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(AttributeRuleRaw::Rule)
            }
        }
        d.deserialize_any(Vis)
    }
}

impl JsonSchema for AttributeRuleRaw {
    fn schema_name() -> Cow<'static, str> {
        "AttributeRule".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A template string, or a rule with `value` and options.",
            "anyOf": [{"type": "string"}, g.subschema_for::<AttributeRuleFull>()]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoint, Webhook, Orchestration

/// Pagination styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PaginationStyle {
    /// One request.
    None,
    /// `param` is a page number starting at `start`.
    PageNumber,
    /// `param` is an item offset starting at `start`.
    Offset,
    /// Follow the link at JSON pointer `next`.
    NextLink,
}

/// How an endpoint pages through results.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaginationRaw {
    /// `none`, `pageNumber`, `offset` or `nextLink`.
    pub style: Sp<PaginationStyle>,
    /// Query parameter carrying the page number or offset.
    #[serde(default)]
    pub param: Option<Sp<String>>,
    /// First page number or offset.
    #[serde(default)]
    pub start: Option<Sp<i64>>,
    /// Query parameter carrying the page size.
    #[serde(default)]
    pub size_param: Option<Sp<String>>,
    /// Page size.
    #[serde(default)]
    pub size: Option<Sp<i64>>,
    /// JSON pointer to the total item count in a response.
    #[serde(default)]
    pub total: Option<Sp<String>>,
    /// JSON pointer to the next page's URL (`nextLink`).
    #[serde(default)]
    pub next: Option<Sp<String>>,
}

/// Repeat an endpoint for every item of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ForEachRaw {
    /// Once per company (`companyId` in the query template context).
    Companies,
}

/// An inbound endpoint: how to list accounts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSpec {
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Option<Sp<String>>,
    /// Path relative to the Carbonite base URL.
    #[serde(default)]
    pub path: Option<Sp<String>>,
    /// Absolute URL instead of `path`.
    #[serde(default)]
    pub url: Option<Sp<String>>,
    /// Query parameters (templates with `email` and `companyId` in context; `secret()` allowed).
    #[serde(default)]
    pub query: OrderedMap<Sp<String>>,
    /// Extra headers (templates; `secret()` allowed).
    #[serde(default)]
    pub headers: OrderedMap<Sp<String>>,
    /// Pagination (default none).
    #[serde(default)]
    pub pagination: Option<Sp<PaginationRaw>>,
    /// JSON pointer to the array of items.
    pub items: Sp<String>,
    /// JSON pointer to an item's server id.
    #[serde(default)]
    pub id: Option<Sp<String>>,
    /// Repeat the endpoint per company.
    #[serde(default)]
    pub for_each: Option<ForEachRaw>,
}

/// Body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// `application/json` (default); the rendered body must parse as JSON.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/xml`.
    Xml,
    /// `text/plain; charset=utf-8`.
    Text,
}

/// Webhook targets other than an absolute URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookTarget {
    /// Call Carbonite with its base URL and bearer token, through the rate-limit ledger.
    Carbonite,
}

/// An outbound action.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    /// HTTP method (default POST).
    #[serde(default)]
    pub method: Option<Sp<String>>,
    /// Absolute URL (template).
    #[serde(default)]
    pub url: Option<Sp<String>>,
    /// `carbonite`: call the Carbonite API (use with `path`).
    #[serde(default)]
    pub target: Option<Sp<WebhookTarget>>,
    /// Path on the Carbonite base URL (with `target: carbonite`).
    #[serde(default)]
    pub path: Option<Sp<String>>,
    /// Headers (templates; `secret()` allowed).
    #[serde(default)]
    pub headers: OrderedMap<Sp<String>>,
    /// Query parameters (templates; `secret()` allowed).
    #[serde(default)]
    pub query: OrderedMap<Sp<String>>,
    /// Request timeout (default: `carbonite.timeout`).
    #[serde(default)]
    #[schemars(schema_with = "duration_schema")]
    pub timeout: Option<Sp<String>>,
    /// Body encoding (default json).
    #[serde(default)]
    pub message_type: Option<MessageType>,
    /// Body template.
    #[serde(default)]
    pub body: Option<Sp<String>>,
    /// Accepted response statuses (default any 2xx).
    #[serde(default)]
    pub expect_status: Vec<Sp<i64>>,
}

/// One step of an orchestration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepRaw {
    /// The Webhook to call.
    pub webhook: Sp<String>,
}

/// An event-driven sequence of webhooks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrchestrationSpec {
    /// Events: `created`, `adopted`, `updated`, `suspended`, `reactivated`, `deleted`, `changed:<Field>`.
    pub on: Vec<Sp<String>>,
    /// A condition (minijinja expression), tested for truthiness.
    #[serde(default)]
    pub when: Option<Sp<String>>,
    /// Webhooks to call, in order.
    pub steps: Vec<Sp<StepRaw>>,
}
