//! Directory sources: what AD / OpenLDAP / an LDIF file say about users.
//!
//! Everything above this module sees plain [`Entry`] values.

pub mod dn;
pub mod entry;
pub mod filter;
pub mod ldif;

pub use entry::{AttrValue, Entry};
