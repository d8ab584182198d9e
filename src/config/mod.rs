//! Config: YAML documents -> located raw types -> validated model.
//!
//! `node` parses YAML into located trees, `raw` holds the serde/JSON Schema types, `load` walks
//! the directory and dispatches documents by kind, `validate` turns raw documents into the
//! `model`, collecting every problem as a located `diag::Diagnostic`.

pub mod diag;
pub mod load;
pub mod model;
pub mod node;
pub mod rate;
pub mod raw;
pub mod secret;
pub mod syntax;
pub mod validate;

pub use diag::{Diagnostic, SourceMap};
pub use load::{LoadError, load};
pub use model::Config;
