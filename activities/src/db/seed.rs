//! Seed data: the `demo` tenant of `zengine dev`.

use zengine_domain::TenantId;
use zengine_domain::flow::demo_flow;

use super::Database;

/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";

/// Creates the demo tenant and publishes the demo flow, unless the same flow is already its
/// current version. Safe to run at every start.
pub async fn seed_demo_tenant(db: &Database) -> anyhow::Result<()> {
    let tenant_id = TenantId::parse(DEMO_TENANT)?;
    let flow = demo_flow();
    db.tenants().upsert(&tenant_id, "Demo", &flow.id).await?;
    let tenant = db
        .tenants()
        .get(&tenant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo tenant vanished after upsert"))?;
    let same = db
        .tenants()
        .current_flow(&tenant)
        .await?
        .is_some_and(|current| current.nodes == flow.nodes && current.start == flow.start);
    if !same {
        db.tenants().publish_flow(&tenant_id, &flow).await?;
    }
    Ok(())
}
