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
        .account(
            &tenant_id,
            zengine_domain::channel::strategy::WHATSAPP_META_CLOUD,
        )
        .await?
        .is_none()
    {
        db.channels()
            .upsert_account(&super::ChannelAccount {
                strategy: zengine_domain::channel::strategy::WHATSAPP_META_CLOUD.to_owned(),
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
    seed_demo_assistance(db, &tenant_id).await?;
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

/// The demo tenant's assistance providers, and its `sns-sms` account pointing at a local moto
/// server (`.tools/moto/bin/moto_server -p 5055`; without one the SMS steps fail and the MOK
/// error branch runs). Existing rows are left as they are.
async fn seed_demo_assistance(db: &Database, tenant_id: &TenantId) -> anyhow::Result<()> {
    use super::assistance::Provider;
    let providers = [
        (
            "PRV-LIM-001",
            "Clínica San Borja Asistencia",
            "MEDICAL",
            "PE",
            "Lima",
            "+5114751000",
        ),
        (
            "PRV-LIM-002",
            "Ambulancias Lima 24 Horas",
            "TRANSPORT",
            "PE",
            "Lima",
            "+5114402020",
        ),
        (
            "PRV-LIM-003",
            "Estudio Legal Miraflores",
            "LEGAL",
            "PE",
            "Lima",
            "+5112427788",
        ),
        (
            "PRV-CUS-001",
            "Clínica Pardo Cusco",
            "MEDICAL",
            "PE",
            "Cusco",
            "+5184240387",
        ),
        (
            "PRV-CUS-002",
            "Odontología Imperial Cusco",
            "DENTAL",
            "PE",
            "Cusco",
            "+5184252525",
        ),
        (
            "PRV-BOG-001",
            "Clínica del Country Bogotá",
            "MEDICAL",
            "CO",
            "Bogotá",
            "+5715300470",
        ),
    ];
    let repo = db.assistance();
    for (id, name, category, country, city, phone) in providers {
        if repo.provider(tenant_id, id).await?.is_none() {
            repo.upsert_provider(
                tenant_id,
                &Provider {
                    provider_id: id.to_owned(),
                    name: name.to_owned(),
                    category: category.to_owned(),
                    country: country.to_owned(),
                    city: city.to_owned(),
                    phone: Some(phone.to_owned()),
                    email: None,
                    active: true,
                },
            )
            .await?;
        }
    }
    let strategy = zengine_domain::channel::strategy::SNS_SMS;
    if db.channels().account(tenant_id, strategy).await?.is_none() {
        db.channels()
            .upsert_account(&super::ChannelAccount {
                strategy: strategy.to_owned(),
                account_key: tenant_id.to_string(),
                tenant_id: tenant_id.clone(),
                settings: serde_json::json!({
                    "aws": {"region": "us-east-1", "endpoint_url": "http://127.0.0.1:5055"},
                }),
            })
            .await?;
    }
    Ok(())
}
