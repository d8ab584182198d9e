//! Checks of the languages embedded in YAML values: LDAP filters, DNs and templates.
//! Adapters over `directory::{filter, dn}`, so validation sees one small API. Templates are
//! checked with `template::TemplateEngine` directly.

/// A problem inside a filter, at a character offset.
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Parse an LDAP filter; with `client_side`, also require the subset that carbonite-sync
/// evaluates itself (LDIF sources and `disabledFilter`, SPEC §6.1).
pub fn check_filter(filter: &str, client_side: bool) -> Result<(), SyntaxError> {
    use crate::directory::filter::{Filter, FilterError};
    let parsed = Filter::parse(filter).map_err(|e| match e {
        FilterError::Syntax { offset, message } => SyntaxError {
            offset: char_to_byte(filter, offset),
            message,
            hint: Some("LDAP filters follow RFC 4515, e.g. (&(objectClass=user)(employeeID=*)); escape ( ) * \\ in values as \\28 \\29 \\2a \\5c".into()),
        },
        other => SyntaxError { offset: 0, message: other.to_string(), hint: None },
    })?;
    if client_side {
        parsed.client_side_support().map_err(|e| SyntaxError {
            offset: 0,
            message: e.to_string(),
            hint: Some("this filter is evaluated by carbonite-sync itself (LDIF source or disabledFilter), which supports and/or/not, =, =*, substrings, >=, <=, ~= and the bitwise rules 1.2.840.113556.1.4.803/804".into()),
        })?;
    }
    Ok(())
}

/// Check DN syntax (RFC 4514).
pub fn check_dn(dn: &str) -> Result<(), String> {
    crate::directory::dn::Dn::validate(dn).map_err(|e| e.to_string())
}

fn char_to_byte(s: &str, chars: usize) -> usize {
    s.char_indices()
        .nth(chars)
        .map(|(b, _)| b)
        .unwrap_or(s.len())
}
