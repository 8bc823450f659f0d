//! Seed data: the `demo` tenant of `zengine dev`.

use zengine_domain::TenantId;
use zengine_domain::flow::{FlowGraph, demo_flow};

use super::Database;

/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";
/// The demo tenant's WhatsApp phone number id (Meta's documentation example).
pub const DEMO_WHATSAPP_PHONE_NUMBER_ID: &str = "106540352242922";

/// Creates the demo tenant with the demo flow as its main flow, and publishes `extra` flows
/// beside it; a flow is published only when it differs from its current version. Safe to run at
/// every start.
pub async fn seed_demo_tenant(db: &Database, extra: &[FlowGraph]) -> anyhow::Result<()> {
    let tenant_id = TenantId::parse(DEMO_TENANT)?;
    let main = demo_flow();
    db.tenants().upsert(&tenant_id, "Demo", &main.id).await?;
    // Inbound WhatsApp works out of the box; replies need a real token (or a fake Graph API at
    // api_base) in ZENGINE_DEMO_WHATSAPP_TOKEN, else they end as dead letters.
    if db
        .channels()
        .account(&tenant_id, crate::channels::WHATSAPP_META_CLOUD)
        .await?
        .is_none()
    {
        db.channels()
            .upsert_account(&super::ChannelAccount {
                strategy: crate::channels::WHATSAPP_META_CLOUD.to_owned(),
                account_key: DEMO_WHATSAPP_PHONE_NUMBER_ID.to_owned(),
                tenant_id: tenant_id.clone(),
                settings: serde_json::json!({
                    "api_base": "https://graph.facebook.com",
                    "api_version": "v23.0",
                    "access_token": "env:ZENGINE_DEMO_WHATSAPP_TOKEN",
                }),
            })
            .await?;
    }
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
