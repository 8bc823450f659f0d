//! Stable names shared by starters, workers and operators: task queues and search attributes.
//! Workflow, update and query type names live next to each workflow (`#[run(name = ..)]`).

use temporalio_common::search_attributes::SearchAttributeKey;

/// Keyword search attribute present on every ZEngine workflow: the owning tenant.
pub const TENANT_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("TenantId");

/// Search attributes ZEngine needs registered in its namespace, with their Temporal type names.
pub const REQUIRED_SEARCH_ATTRIBUTES: &[(&str, &str)] = &[("TenantId", "Keyword")];

/// Task queue base names. A deployment may prefix them all (`temporal.task_queue_prefix`).
pub mod queues {
    /// Conversation workflows (one per tenant, channel and contact).
    pub const CONVERSATIONS: &str = "conversations";
    /// Outbound channel sends, rate limited.
    pub const CHANNELS: &str = "channels";
    /// Order payment workflows.
    pub const PAYMENTS: &str = "payments";
    /// OCR activities (CPU bound).
    pub const OCR: &str = "ocr";
    /// Route optimisation (CPU bound).
    pub const ROUTING: &str = "routing";
    /// Assistance events and MOK tracking.
    pub const ASSISTANCE: &str = "assistance";

    /// Every queue, in a stable order.
    pub const ALL: &[&str] = &[CONVERSATIONS, CHANNELS, PAYMENTS, OCR, ROUTING, ASSISTANCE];
}

/// The concrete task queue name for `base` under a deployment `prefix`.
pub fn task_queue(prefix: &str, base: &str) -> String {
    format!("{prefix}{base}")
}

/// The queue named `base` beside `queue`, whose own base name is `own_base` (same deployment
/// prefix). Workflows use it to route activities and children without configuration.
pub fn sibling_queue(queue: &str, own_base: &str, base: &str) -> String {
    task_queue(queue.strip_suffix(own_base).unwrap_or(""), base)
}
