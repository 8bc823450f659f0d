//! Whether a worker is draining (its shutdown signal arrived).
//!
//! On shutdown the SDK gives running activities `worker.graceful_shutdown_secs`, then cancels
//! them, exactly as when their workflow cancels them: an activity cannot tell the two apart
//! from its context. Activities whose cancellation means "the user wants the result now" (the
//! route solve keeps the best routes found) hold the [`Drain`] of the workers that run them and
//! ask it first: a worker going away is not the user, so such an activity fails as retryable
//! and another worker redoes the work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The drain flag of one set of workers (`zengine_workers::run_workers` makes one and raises
/// it when its shutdown signal arrives, before it stops the workers); clones share it.
#[derive(Debug, Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    /// Marks the workers as draining.
    pub fn begin(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Drain::begin`] was called.
    pub fn draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
