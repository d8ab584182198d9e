//! config
pub mod rate;
