//! Directory sources: what AD / OpenLDAP / an LDIF file say about users.
//!
//! Everything above this module sees plain [`Entry`] values, obtained through the
//! [`DirectorySource`] trait: [`ldap::LdapSource`] (a server) or [`ldif_source::LdifSource`]
//! (a file). [`read`] plans the reconcile's searches and the attributes they request;
//! [`snapshot`] writes entries back as LDIF.

pub mod dn;
pub mod entry;
pub mod filter;
pub mod ldap;
pub mod ldif;
pub mod ldif_source;
pub mod read;
pub mod snapshot;
pub mod source;
mod tls;

pub use entry::{AttrValue, Entry};
pub use source::{DirectoryError, DirectorySource, Failure, SearchRequest, open};
