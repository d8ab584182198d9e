//! Engine-level tests: context names, functions, checks, rendering.

use super::*;
