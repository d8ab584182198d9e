//! carbonite-sync: keep Carbonite backup accounts in step with Active Directory.
//!
//! The crate is a library plus a thin binary (`main.rs`). See ARCHITECTURE.md for the map.

pub mod apply;
pub mod carbonite;
pub mod cli;
pub mod compare;
pub mod config;
pub mod directory;
pub mod emulator;
pub mod error;
pub mod journal;
pub mod lock;
pub mod observed_cache;
pub mod output;
pub mod pass;
pub mod reconcile;
pub mod render;
pub mod schema;
pub mod state;
pub mod template;
pub mod watch;
pub mod webhook;
