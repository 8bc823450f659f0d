//! Repository tests: every test runs against SQLite and PostgreSQL with the same code.

use zengine_activities::Backend;
use zengine_activities::db::NewIdempotencyRecord;
use zengine_activities::db::seed::{DEMO_TENANT, seed_demo_tenant};
use zengine_activities::db::testing::TestDatabase;
use zengine_domain::flow::demo_flow;
use zengine_domain::{IdempotencyKey, TenantId};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(zengine_activities::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(zengine_activities::Backend::Postgres).await
            })*
        }
    };
}

on_both_backends!(
    migrations_are_idempotent,
    tenants_round_trip_and_unknown_tenants_are_none,
    publishing_a_flow_assigns_increasing_versions,
    seeding_the_demo_tenant_twice_publishes_one_version,
    idempotency_records_first_writer_wins,
    expired_idempotency_records_are_invisible_replaceable_and_purged,
);

async fn migrations_are_idempotent(backend: Backend) {
    let t = TestDatabase::new(backend).await.unwrap();
    t.db.migrate().await.unwrap();
    t.db.ping().await.unwrap();
    t.drop_db().await.unwrap();
}

async fn tenants_round_trip_and_unknown_tenants_are_none(backend: Backend) {
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    assert_eq!(t.db.tenants().get(&acme).await.unwrap(), None);
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    t.db.tenants()
        .upsert(&acme, "Acme SAC", "main")
        .await
        .unwrap();
    let tenant = t.db.tenants().get(&acme).await.unwrap().unwrap();
    assert_eq!(tenant.name, "Acme SAC");
    assert_eq!(tenant.main_flow_id, "main");
    t.drop_db().await.unwrap();
}

async fn publishing_a_flow_assigns_increasing_versions(backend: Backend) {
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let flow = demo_flow();
    t.db.tenants()
        .upsert(&acme, "Acme", &flow.id)
        .await
        .unwrap();
    let tenant = t.db.tenants().get(&acme).await.unwrap().unwrap();
    assert_eq!(t.db.tenants().current_flow(&tenant).await.unwrap(), None);
    assert_eq!(t.db.tenants().publish_flow(&acme, &flow).await.unwrap(), 1);
    assert_eq!(t.db.tenants().publish_flow(&acme, &flow).await.unwrap(), 2);
    let current = t.db.tenants().current_flow(&tenant).await.unwrap().unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(current.nodes, flow.nodes);
    t.drop_db().await.unwrap();
}

async fn seeding_the_demo_tenant_twice_publishes_one_version(backend: Backend) {
    let t = TestDatabase::new(backend).await.unwrap();
    seed_demo_tenant(&t.db, &[]).await.unwrap();
    seed_demo_tenant(&t.db, &[]).await.unwrap();
    let demo = TenantId::parse(DEMO_TENANT).unwrap();
    let tenant = t.db.tenants().get(&demo).await.unwrap().unwrap();
    let flow = t.db.tenants().current_flow(&tenant).await.unwrap().unwrap();
    assert_eq!(flow.version, 1);
    t.drop_db().await.unwrap();
}

fn record<'a>(
    tenant: &'a TenantId,
    key: &'a IdempotencyKey,
    hash: &'a str,
    body: &'a str,
    ttl_ms: i64,
) -> NewIdempotencyRecord<'a> {
    NewIdempotencyRecord {
        tenant_id: tenant,
        scope: "webchat",
        key,
        request_hash: hash,
        response_status: 200,
        response_body: body,
        ttl_ms,
    }
}

async fn idempotency_records_first_writer_wins(backend: Backend) {
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    t.db.tenants()
        .upsert(&other, "Other", "main")
        .await
        .unwrap();
    let key = IdempotencyKey::parse("k-1").unwrap();
    let repo = t.db.idempotency();
    assert_eq!(repo.get(&acme, "webchat", &key).await.unwrap(), None);
    assert!(
        repo.put(record(&acme, &key, "h1", "first", 60_000))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .put(record(&acme, &key, "h2", "second", 60_000))
            .await
            .unwrap()
    );
    let got = repo.get(&acme, "webchat", &key).await.unwrap().unwrap();
    assert_eq!(
        (got.request_hash.as_str(), got.response_body.as_str()),
        ("h1", "first")
    );
    assert_eq!(got.response_status, 200);
    // Keys are per tenant.
    assert_eq!(repo.get(&other, "webchat", &key).await.unwrap(), None);
    t.drop_db().await.unwrap();
}

async fn expired_idempotency_records_are_invisible_replaceable_and_purged(backend: Backend) {
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let repo = t.db.idempotency();
    let old = IdempotencyKey::parse("old").unwrap();
    let live = IdempotencyKey::parse("live").unwrap();
    assert!(
        repo.put(record(&acme, &old, "h", "gone", -1))
            .await
            .unwrap()
    );
    assert!(
        repo.put(record(&acme, &live, "h", "kept", 60_000))
            .await
            .unwrap()
    );
    assert_eq!(repo.get(&acme, "webchat", &old).await.unwrap(), None);
    assert!(
        repo.put(record(&acme, &old, "h3", "again", -1))
            .await
            .unwrap()
    );
    assert_eq!(repo.purge_expired().await.unwrap(), 1);
    assert!(repo.get(&acme, "webchat", &live).await.unwrap().is_some());
    t.drop_db().await.unwrap();
}
