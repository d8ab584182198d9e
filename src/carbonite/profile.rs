//! The built-in Carbonite connector profile (SPEC §5), shipped as data: the preconfigured
//! Endpoints (a YAML stream parsed by the same loader as user documents) and the default write
//! routes. Everything here is overridable: Endpoints by name, routes via `carbonite.routes`.

use crate::config::model::{Route, Routes};

/// The preconfigured Endpoint documents.
pub const BUILTIN_ENDPOINTS_YAML: &str = include_str!("builtin.yaml");

/// Shown as the file name of built-in documents in diagnostics.
pub const BUILTIN_FILE_NAME: &str = "<built-in carbonite profile>";

/// Names of the built-in Endpoints.
pub const BUILTIN_ENDPOINTS: &[&str] = &[
    "carbonite-users",
    "carbonite-user-by-email",
    "carbonite-companies",
    "carbonite-usergroups",
];

/// The endpoint used to resolve unknown-outcome creates (§8).
pub const USER_BY_EMAIL: &str = "carbonite-user-by-email";
pub const USERS: &str = "carbonite-users";
pub const COMPANIES: &str = "carbonite-companies";
pub const USER_GROUPS: &str = "carbonite-usergroups";

/// Names accepted under `carbonite.routes`.
pub const ROUTE_NAMES: &[&str] = &["getUser", "createUser", "updateUser", "deleteUser"];

/// The token route (documented).
pub const TOKEN_ROUTE: (&str, &str) = ("POST", "/api/tokens/apikey");

/// The default write routes (`createUser` documented; the others assumed).
pub fn default_routes() -> Routes {
    let r = |m: &str, p: &str| Route {
        method: m.into(),
        path: p.into(),
    };
    Routes {
        get_user: r("GET", "/api/users/{UserId}"),
        create_user: r("POST", "/api/users"),
        update_user: r("PUT", "/api/users/{UserId}"),
        delete_user: r("DELETE", "/api/users/{UserId}"),
    }
}
