//! The Carbonite side: connector profile (and, with later issues, the HTTP client, auth,
//! pagination and the rate-limit ledger).

pub mod profile;
