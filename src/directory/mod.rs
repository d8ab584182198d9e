//! Directory sources: what AD / OpenLDAP / an LDIF file say about users.
//!
//! Everything above this module sees plain [`Entry`] values.

pub mod entry;

pub use entry::{AttrValue, Entry};
