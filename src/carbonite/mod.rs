//! carbonite
