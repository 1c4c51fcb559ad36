//! The one bound on every wait in the tests: generous, so that reaching it means the
//! awaited behaviour is broken, not that the machine is slow (a loaded machine under
//! valgrind needs a small fraction of it). Set `NWE_TEST_DEADLINE_SECS` to change it.
//!
//! Used as `mod deadline;` inside `util` and as `#[path = "util/deadline.rs"] mod
//! deadline;` by tests that do not use `util`.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

/// The default bound, in seconds.
pub const DEFAULT_DEADLINE_SECS: u64 = 60;

/// How long any wait in a test may take before it fails.
pub fn deadline() -> Duration {
    static SECS: OnceLock<u64> = OnceLock::new();
    Duration::from_secs(*SECS.get_or_init(|| {
        std::env::var("NWE_TEST_DEADLINE_SECS")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&secs| secs > 0)
            .unwrap_or(DEFAULT_DEADLINE_SECS)
    }))
}
