//! ZEngine patch: the workflow a payload belongs to, for payload codecs.
//!
//! Upstream's `SerializationContextData` carries no workflow identity (its structs are empty and
//! marked experimental), so a codec cannot encrypt per tenant. The worker runs every codec
//! `encode` of a workflow activation completion and of an activity task (its result and
//! heartbeats) inside [`scope`] with that workflow's id; a codec reads it synchronously with
//! [`current`] when `encode` is called. Client code can do the same around its own calls
//! (ZEngine's client interceptor does).

use std::future::Future;

tokio::task_local! {
    static WORKFLOW_ID: String;
}

/// Runs `f` with `workflow_id` as the payload scope.
pub async fn scope<F: Future>(workflow_id: String, f: F) -> F::Output {
    WORKFLOW_ID.scope(workflow_id, f).await
}

/// Runs `f` in `workflow_id`'s scope when there is one, else unscoped.
pub async fn maybe_scope<F: Future>(workflow_id: Option<String>, f: F) -> F::Output {
    match workflow_id {
        Some(id) if !id.is_empty() => scope(id, f).await,
        _ => f.await,
    }
}

/// The workflow id of the enclosing [`scope`], if any.
pub fn current() -> Option<String> {
    WORKFLOW_ID.try_with(Clone::clone).ok()
}
