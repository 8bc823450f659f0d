//! Deterministic Temporal workflow definitions of ZEngine.
//!
//! # Determinism rules — read before writing workflow code
//!
//! Workflow code is *replayed*: after a worker restart, or when its cache evicts a workflow,
//! Temporal feeds the recorded history back into this code and expects the very same commands in
//! the very same order. So, inside `#[run]`, signal, update and query handlers:
//!
//! | never                                              | instead                                   |
//! |----------------------------------------------------|-------------------------------------------|
//! | `tokio::select!`, `tokio::spawn`, `tokio::time::sleep` | `temporalio_sdk::workflows::{select!, join!}`, `ctx.timer(..)` |
//! | `SystemTime::now()`, `Instant::now()`, `chrono::Utc::now()` | `ctx.workflow_time()`                     |
//! | `rand`, `uuid::Uuid::new_v4()`                      | `ctx.random()`, `ctx.uuid4()`             |
//! | I/O of any kind: HTTP, database, files, env vars   | an activity (`activities` crate)          |
//! | iterating a `HashMap`/`HashSet` to decide anything | `BTreeMap`/`BTreeSet` or a `Vec`          |
//! | reading global mutable state or configuration      | pass it in the workflow input             |
//!
//! Changing the commands a workflow emits (adding, removing or reordering activities, timers or
//! child workflows) breaks histories that are already recorded. Guard such changes with
//! `ctx.patched("change-id")` so old runs keep their path, and add a history for the new shape
//! to `workflows/tests/histories/` (see `workflows/README.md`). The replay test in
//! `workflows/tests/replay.rs` must keep passing for every committed history.
//!
//! The SDK's runtime nondeterminism detector stays on (`WorkerOptions` default), and
//! `cargo clippy` refuses the clock, randomness, threads, environment and file I/O in this
//! crate and in `domain` (`workflows/clippy.toml`; `domain/clippy.toml` links to it).

pub mod assistance;
pub mod channels;
// The payload codec runs in the worker and the API, outside workflow code: it reads the clock
// (key cache expiry) and draws nonces from the system's random source.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod codec;
pub mod conversation;
pub mod flows;
pub mod mok;
pub mod names;
pub mod order;
pub mod payment;
// The replay harness of tests and `zengine workflow replay`: reads history files.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod replay;
pub mod retention;
pub mod routing;

pub use assistance::AssistanceWorkflow;
pub use channels::{ChannelHealthWorkflow, RedriveWorkflow};
pub use conversation::ConversationWorkflow;
pub use mok::MokWorkflow;
pub use order::OrderWorkflow;
pub use payment::PaymentWorkflow;
pub use retention::RetentionPurgeWorkflow;
pub use routing::RouteOptimisationWorkflow;

/// The innermost failure of an activity error.
fn innermost(
    error: &temporalio_sdk::ActivityExecutionError,
) -> Option<&temporalio_common::protos::temporal::api::failure::v1::Failure> {
    let mut failure = error.failure()?;
    while let Some(cause) = failure.cause.as_deref() {
        failure = cause;
    }
    Some(failure)
}

/// The application failure type of an activity error (what the activity set with
/// `type_name`), if any.
pub(crate) fn failure_type(error: &temporalio_sdk::ActivityExecutionError) -> Option<String> {
    use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
    match innermost(error)?.failure_info.as_ref()? {
        FailureInfo::ApplicationFailureInfo(info) => Some(info.r#type.clone()),
        _ => None,
    }
}

/// The retry delay an activity asked for (`next_retry_delay`), if any.
pub(crate) fn failure_retry_delay(
    error: &temporalio_sdk::ActivityExecutionError,
) -> Option<std::time::Duration> {
    use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
    match innermost(error)?.failure_info.as_ref()? {
        FailureInfo::ApplicationFailureInfo(info) => {
            let d = info.next_retry_delay.as_ref()?;
            Some(std::time::Duration::new(
                u64::try_from(d.seconds).ok()?,
                u32::try_from(d.nanos).ok()?,
            ))
        }
        _ => None,
    }
}

/// The innermost failure message of an activity error (what the activity itself said), for
/// flow variables and payment reasons.
pub(crate) fn failure_message(error: &temporalio_sdk::ActivityExecutionError) -> String {
    let Some(mut failure) = error.failure() else {
        return error.to_string();
    };
    while let Some(cause) = failure.cause.as_deref() {
        failure = cause;
    }
    failure.message.clone()
}
