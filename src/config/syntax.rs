//! Checks of the languages embedded in YAML values: LDAP filters, DNs and templates.
//! Adapters over `directory::{filter, dn}` and `template`, so validation sees one small API.

use std::collections::BTreeSet;

use super::validate::TemplatePlace;

/// A problem inside a filter, at a character offset.
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// A template problem at a 1-based line/column of the template text.
pub struct TemplateIssue {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

// INTEGRATION PENDING: replaced by directory::filter once that branch lands.
pub fn check_filter(_filter: &str, _client_side: bool) -> Result<(), SyntaxError> {
    Ok(())
}

// INTEGRATION PENDING: replaced by directory::dn once that branch lands.
pub fn check_dn(_dn: &str) -> Result<(), String> {
    Ok(())
}

// INTEGRATION PENDING: replaced by template::TemplateEngine::check once that branch lands.
pub fn check_template(
    _source: &str,
    _place: TemplatePlace,
    _formats: &BTreeSet<String>,
) -> Vec<TemplateIssue> {
    Vec::new()
}
