//! Seed data: the `demo` tenant of `zengine dev`.

use zengine_domain::TenantId;
use zengine_domain::flow::{FlowGraph, demo_flow};

use super::Database;

/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";

/// Creates the demo tenant with the demo flow as its main flow, and publishes `extra` flows
/// beside it; a flow is published only when it differs from its current version. Safe to run at
/// every start.
pub async fn seed_demo_tenant(db: &Database, extra: &[FlowGraph]) -> anyhow::Result<()> {
    let tenant_id = TenantId::parse(DEMO_TENANT)?;
    let main = demo_flow();
    db.tenants().upsert(&tenant_id, "Demo", &main.id).await?;
    for flow in std::iter::once(&main).chain(extra) {
        let same = db
            .tenants()
            .latest_flow(&tenant_id, &flow.id)
            .await?
            .is_some_and(|current| {
                current.nodes == flow.nodes
                    && current.start == flow.start
                    && current.session_timeout_secs == flow.session_timeout_secs
                    && current.survey == flow.survey
            });
        if !same {
            db.tenants().publish_flow(&tenant_id, flow).await?;
        }
    }
    Ok(())
}
