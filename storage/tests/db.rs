//! Repository tests: every test runs against SQLite and PostgreSQL with the same code.

use zengine_domain::flow::demo_flow;
use zengine_domain::{IdempotencyKey, TenantId};
use zengine_storage::NewIdempotencyRecord;
use zengine_storage::seed::{DEMO_TENANT, seed_demo_tenant};
use zengine_storage::testing::{TestBackend, TestDatabase};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(zengine_storage::testing::TestBackend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(zengine_storage::testing::TestBackend::Postgres).await
            })*
        }
        /// The same suite as the restricted application role, under row-level security.
        mod postgres_rls {
            $(#[tokio::test]
            async fn $name() {
                super::$name(zengine_storage::testing::TestBackend::PostgresRls).await
            })*
        }
    };
}

on_both_backends!(
    migrations_are_idempotent,
    tenants_round_trip_and_unknown_tenants_are_none,
    publishing_a_flow_assigns_increasing_versions,
    publishing_the_same_flow_at_once_assigns_each_publish_its_own_version,
    seeding_the_demo_tenant_twice_publishes_one_version,
    idempotency_records_first_writer_wins,
    expired_idempotency_records_are_invisible_replaceable_and_purged,
    orders_are_created_once_per_client_key_and_listed_newest_first,
    order_status_changes_are_compare_and_set,
    events_and_surveys_are_recorded_once,
    tracking_events_are_idempotent_and_in_order,
    payments_settle_once_and_operation_codes_pay_once,
    payment_reviews_move_the_order_and_release_rejected_codes,
    receipt_images_and_payment_settings_round_trip,
    channel_accounts_route_dedupe_and_delivery_states_move_forward,
    api_keys_authenticate_until_revoked_and_stay_in_their_tenant,
    assistance_catalogues_match_the_state_machines,
    providers_are_searched_by_category_city_and_text,
    drafts_are_created_once_per_key_and_edited_only_as_drafts,
    assistance_status_changes_follow_the_state_machine_once_per_change_id,
    providers_move_the_event_and_repeat_without_effect,
    notes_consultations_and_the_log_are_written_once,
    mok_tracking_applies_its_action_and_log_row_together_once,
    assistance_settings_round_trip_and_reject_bad_rules,
    old_orders_are_purged_with_everything_keyed_by_them_once,
    unlinked_uploads_are_purged_after_their_ttl_and_linked_ones_kept,
    concurrent_read_then_write_transactions_all_succeed,
    chatwoot_settings_links_and_posted_messages_stay_in_their_tenant,
    racing_delivery_statuses_never_move_a_message_back,
    writers_racing_on_one_key_lose_nothing,
);

async fn migrations_are_idempotent(backend: TestBackend) {
    let t = TestDatabase::new(backend).await.unwrap();
    if backend == TestBackend::PostgresRls {
        assert!(
            t.db.migrate().await.is_err(),
            "the application role cannot change the schema"
        );
    } else {
        t.db.migrate().await.unwrap();
    }
    t.db.ping().await.unwrap();
    t.drop_db().await.unwrap();
}

async fn tenants_round_trip_and_unknown_tenants_are_none(backend: TestBackend) {
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

async fn publishing_a_flow_assigns_increasing_versions(backend: TestBackend) {
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
    // Who published is kept with each version, and any version can be read back (the flow
    // studio's diff and rollback).
    let mut changed = flow.clone();
    changed.start = changed.nodes.last().unwrap().id.clone();
    assert_eq!(
        t.db.tenants()
            .publish_flow_as(&acme, &changed, Some("ana@acme"))
            .await
            .unwrap(),
        3
    );
    let versions = t.db.tenants().flows(&acme).await.unwrap();
    let published_by: Vec<Option<&str>> = versions[0]
        .versions
        .iter()
        .map(|v| v.published_by.as_deref())
        .collect();
    assert_eq!(published_by, [None, None, Some("ana@acme")]);
    let first =
        t.db.tenants()
            .flow_version(&acme, &flow.id, 1)
            .await
            .unwrap()
            .unwrap();
    assert_eq!((first.version, &first.start), (1, &flow.start));
    let third =
        t.db.tenants()
            .flow_version(&acme, &flow.id, 3)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(third.start, changed.start);
    assert_eq!(
        t.db.tenants()
            .flow_version(&acme, &flow.id, 4)
            .await
            .unwrap(),
        None
    );
    let other = TenantId::parse("other").unwrap();
    assert_eq!(
        t.db.tenants()
            .flow_version(&other, &flow.id, 1)
            .await
            .unwrap(),
        None
    );

    // A draft is saved as written (half done is fine), replaced by the next save, read back
    // with who saved it, and only by its tenant; deleting it leaves the versions alone.
    let drafts = t.db.tenants();
    assert_eq!(drafts.draft(&acme, &flow.id).await.unwrap(), None);
    let half = serde_json::json!({"nodes": [{"id": "a"}]});
    drafts
        .save_draft(&acme, &flow.id, &half, "ana@acme")
        .await
        .unwrap();
    let whole = serde_json::json!({"nodes": [{"id": "a", "type": "end"}]});
    drafts
        .save_draft(&acme, &flow.id, &whole, "bob@acme")
        .await
        .unwrap();
    let draft = drafts.draft(&acme, &flow.id).await.unwrap().unwrap();
    assert_eq!(
        (draft.definition, draft.saved_by.as_str()),
        (whole, "bob@acme")
    );
    t.db.tenants()
        .upsert(&other, "Other", "main")
        .await
        .unwrap();
    assert_eq!(drafts.draft(&other, &flow.id).await.unwrap(), None);
    assert!(!drafts.delete_draft(&other, &flow.id).await.unwrap());
    assert!(drafts.delete_draft(&acme, &flow.id).await.unwrap());
    assert_eq!(drafts.draft(&acme, &flow.id).await.unwrap(), None);
    assert!(
        t.db.tenants()
            .flow_version(&acme, &flow.id, 3)
            .await
            .unwrap()
            .is_some()
    );
    t.drop_db().await.unwrap();
}

/// Two admins (or two API replicas) publish the same flow at the same moment: every publish
/// succeeds with its own version, none is lost to a duplicate key (on PostgreSQL both read the
/// same `max(version)` under READ COMMITTED).
async fn publishing_the_same_flow_at_once_assigns_each_publish_its_own_version(
    backend: TestBackend,
) {
    const PUBLISHES: usize = 12;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let flow = demo_flow();
    t.db.tenants()
        .upsert(&acme, "Acme", &flow.id)
        .await
        .unwrap();
    let publishes = (0..PUBLISHES).map(|_| {
        let (db, acme, flow) = (t.db.clone(), acme.clone(), flow.clone());
        tokio::spawn(async move { db.tenants().publish_flow(&acme, &flow).await })
    });
    let results = futures::future::join_all(publishes).await;
    let mut versions: Vec<u32> = results
        .into_iter()
        .map(|r| {
            r.unwrap()
                .unwrap_or_else(|e| panic!("a concurrent publish failed: {e:#}"))
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=PUBLISHES as u32).collect::<Vec<_>>());
    t.drop_db().await.unwrap();
}

async fn seeding_the_demo_tenant_twice_publishes_one_version(backend: TestBackend) {
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

async fn idempotency_records_first_writer_wins(backend: TestBackend) {
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

async fn expired_idempotency_records_are_invisible_replaceable_and_purged(backend: TestBackend) {
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
    assert_eq!(repo.purge_expired(&acme).await.unwrap(), 1);
    assert!(repo.get(&acme, "webchat", &live).await.unwrap().is_some());
    t.drop_db().await.unwrap();
}

fn lines() -> (
    Vec<zengine_domain::order::OrderLine>,
    zengine_domain::money::Cents,
) {
    use zengine_domain::order::{ItemRequest, price_lines};
    price_lines(&[
        ItemRequest {
            sku: Some("lomo".into()),
            name: "Lomo saltado".into(),
            quantity: 2,
            unit_price: serde_json::json!("28.00"),
        },
        ItemRequest {
            sku: None,
            name: "Chicha".into(),
            quantity: 1,
            unit_price: serde_json::json!("6.50"),
        },
    ])
    .unwrap()
}

fn new_order<'a>(
    tenant: &'a TenantId,
    key: &'a str,
    hash: &'a str,
    phone: &'a str,
    lines: &'a [zengine_domain::order::OrderLine],
    total: zengine_domain::money::Cents,
) -> zengine_storage::NewOrder<'a> {
    zengine_storage::NewOrder {
        tenant_id: tenant,
        client_key: key,
        request_hash: hash,
        customer_phone: phone,
        customer_name: Some("Ana"),
        customer_metadata: None,
        order_type: zengine_domain::order::OrderType::Delivery,
        lines,
        total,
        currency: "PEN",
        address: Some("Av. Larco 123"),
        location: Some(zengine_domain::Location {
            lat: -12.12,
            lon: -77.03,
        }),
        delivery_window: None,
        service_minutes: None,
        summary: "2 x Lomo saltado; 1 x Chicha",
    }
}

async fn orders_are_created_once_per_client_key_and_listed_newest_first(backend: TestBackend) {
    use zengine_domain::order::OrderStatus;
    use zengine_storage::{CreateOrderError, OrderFilter};
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    t.db.tenants()
        .upsert(&other, "Other", "main")
        .await
        .unwrap();
    let (lines, total) = lines();
    let (first, created) =
        t.db.orders()
            .create(new_order(&acme, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    assert!(created);
    assert_eq!(
        (first.order_number, first.total.0, first.status),
        (1001, 6250, OrderStatus::Pending)
    );
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.location.unwrap().lat, -12.12);
    let (again, created) =
        t.db.orders()
            .create(new_order(&acme, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    assert!(matches!(
        t.db.orders()
            .create(new_order(
                &acme,
                "k1",
                "other-hash",
                "+51911",
                &lines,
                total
            ))
            .await,
        Err(CreateOrderError::KeyReused)
    ));
    let (second, _) =
        t.db.orders()
            .create(new_order(&acme, "k2", "h2", "+51922", &lines, total))
            .await
            .unwrap();
    assert_eq!(second.order_number, 1002);
    t.db.orders()
        .create(new_order(&other, "k1", "h1", "+51911", &lines, total))
        .await
        .unwrap();

    let all =
        t.db.orders()
            .list(
                &acme,
                OrderFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    assert_eq!(
        all.iter().map(|o| o.order_number).collect::<Vec<_>>(),
        [1002, 1001]
    );
    let by_phone =
        t.db.orders()
            .list(
                &acme,
                OrderFilter {
                    customer_phone: Some("+51911"),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    assert_eq!(by_phone.len(), 1);
    let page =
        t.db.orders()
            .list(
                &acme,
                OrderFilter {
                    before_number: Some(1002),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    assert_eq!(page.len(), 1);
    assert!(
        t.db.orders()
            .get(&other, &first.order_id)
            .await
            .unwrap()
            .is_none(),
        "orders are per tenant"
    );
    t.drop_db().await.unwrap();
}

async fn order_status_changes_are_compare_and_set(backend: TestBackend) {
    use zengine_domain::order::OrderStatus;
    use zengine_storage::OrderFilter;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let (lines, total) = lines();
    let (order, _) =
        t.db.orders()
            .create(new_order(&acme, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    assert!(
        t.db.orders()
            .set_status(
                &acme,
                &order.order_id,
                OrderStatus::Pending,
                OrderStatus::Paid
            )
            .await
            .unwrap()
    );
    assert!(
        !t.db
            .orders()
            .set_status(
                &acme,
                &order.order_id,
                OrderStatus::Pending,
                OrderStatus::Paid
            )
            .await
            .unwrap()
    );
    let paid =
        t.db.orders()
            .list(
                &acme,
                OrderFilter {
                    status: Some(OrderStatus::Paid),
                    limit: 5,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    assert_eq!(paid.len(), 1);
    t.drop_db().await.unwrap();
}

async fn events_and_surveys_are_recorded_once(backend: TestBackend) {
    use zengine_storage::NewEvent;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let payload = serde_json::json!({"x": 1});
    let event = NewEvent {
        event_id: "e-1",
        tenant_id: &acme,
        event_type: zengine_domain::events::EventType::OrderStatusChanged,
        subject: "o-1",
        payload: &payload,
    };
    assert!(t.db.events().record(event.clone()).await.unwrap());
    assert!(!t.db.events().record(event).await.unwrap());
    assert_eq!(
        t.db.events()
            .list(&acme, "Order.StatusChanged")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        t.db.events()
            .record_survey(&acme, "s-1", "c-1", 4, Some("bien"))
            .await
            .unwrap()
    );
    assert!(
        !t.db
            .events()
            .record_survey(&acme, "s-1", "c-1", 5, None)
            .await
            .unwrap()
    );
    assert_eq!(
        t.db.events().survey_summary(&acme).await.unwrap(),
        (1, Some(4.0))
    );
    t.drop_db().await.unwrap();
}

#[tokio::test]
async fn postgres_row_level_security_confines_even_hand_written_sql_to_the_current_tenant() {
    use sqlx::Row;
    let t = TestDatabase::new(TestBackend::PostgresRls).await.unwrap();
    let (a, b) = (
        TenantId::parse("tenant-a").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    let (lines, total) = lines();
    for (tenant, phone) in [(&a, "+51911000001"), (&b, "+51911000002")] {
        t.db.tenants().upsert(tenant, "T", "main").await.unwrap();
        t.db.orders()
            .create(new_order(tenant, "k1", "h1", phone, &lines, total))
            .await
            .unwrap();
    }

    let mut tx = t.db.begin_for(&a).await.unwrap();
    let tenants: Vec<String> = sqlx::query("select tenant_id from sales_order")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, ["tenant-a"], "tenant B's orders are invisible");
    let visible: i64 = sqlx::query_scalar("select count(*) from tenant")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, 1);
    let updated =
        sqlx::query("update sales_order set status = 'CANCELLED' where tenant_id = 'tenant-b'")
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        updated.rows_affected(),
        0,
        "tenant B's rows cannot be changed"
    );
    let deleted = sqlx::query("delete from customer where tenant_id = 'tenant-b'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        deleted.rows_affected(),
        0,
        "tenant B's rows cannot be deleted"
    );
    tx.rollback().await.unwrap();

    let mut tx = t.db.begin_for(&a).await.unwrap();
    let forged = sqlx::query(
        "insert into domain_event (event_id, tenant_id, event_type, subject, payload, occurred_at)
         values ('x', 'tenant-b', 'Forged', 's', '{}', 0)",
    )
    .execute(&mut *tx)
    .await;
    assert!(
        forged.is_err(),
        "writing a row for tenant B under A's context is refused"
    );
    tx.rollback().await.unwrap();

    // Without a tenant context the application role sees nothing at all.
    let orphan: i64 = sqlx::query_scalar("select count(*) from sales_order")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(orphan, 0);
    // And B still sees its own order, untouched.
    let b_orders =
        t.db.orders()
            .list(
                &b,
                zengine_storage::OrderFilter {
                    limit: 5,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    assert_eq!(b_orders.len(), 1);
    assert_eq!(
        b_orders[0].status,
        zengine_domain::order::OrderStatus::Pending
    );
    t.drop_db().await.unwrap();
}

async fn tracking_events_are_idempotent_and_in_order(backend: TestBackend) {
    use zengine_storage::{Recorded, TrackingEvent};
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let (lines, total) = lines();
    let (order, _) =
        t.db.orders()
            .create(new_order(&acme, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    let event = |id: &str, at: i64| TrackingEvent {
        event_id: id.into(),
        order_id: order.order_id.clone(),
        status: "LOCATION".into(),
        location: Some(zengine_domain::Location {
            lat: -12.0,
            lon: -77.0,
        }),
        occurred_at: at,
    };
    assert_eq!(
        t.db.tracking()
            .record(&acme, &event("a", 10))
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        t.db.tracking()
            .record(&acme, &event("a", 10))
            .await
            .unwrap(),
        Recorded::Duplicate(event("a", 10))
    );
    assert_eq!(
        t.db.tracking().record(&acme, &event("b", 5)).await.unwrap(),
        Recorded::OutOfOrder { latest: 10 }
    );
    assert_eq!(
        t.db.tracking()
            .record(&acme, &event("c", 20))
            .await
            .unwrap(),
        Recorded::New
    );
    t.db.tracking().remove(&acme, "c").await.unwrap();
    let timeline =
        t.db.tracking()
            .timeline(&acme, &order.order_id)
            .await
            .unwrap();
    assert_eq!(timeline, vec![event("a", 10)]);
    t.drop_db().await.unwrap();
}

async fn paid_orders(t: &TestDatabase, tenant: &TenantId) -> Vec<String> {
    use zengine_storage::OrderFilter;
    t.db.orders()
        .list(
            tenant,
            OrderFilter {
                status: Some(zengine_domain::order::OrderStatus::Paid),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.order_id)
        .collect()
}

async fn payments_settle_once_and_operation_codes_pay_once(backend: TestBackend) {
    use zengine_domain::payment::{PaymentStatus, Verdict};
    use zengine_storage::Settlement;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let (lines, total) = lines();
    let (o1, _) =
        t.db.orders()
            .create(new_order(&acme, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    let (o2, _) =
        t.db.orders()
            .create(new_order(&acme, "k2", "h2", "+51911", &lines, total))
            .await
            .unwrap();
    let payments = t.db.payments();
    let (p1, created) = payments
        .create(&acme, "pay_1", &o1.order_id, "upload:m1")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(p1.status, PaymentStatus::Pending);
    let (_, created) = payments
        .create(&acme, "pay_1", &o1.order_id, "upload:m1")
        .await
        .unwrap();
    assert!(!created, "the same payment id is one payment");

    let accept = |id: &'static str| Settlement {
        payment_id: id,
        verdict: Verdict::Accept,
        reasons: &[],
        operation_code: Some("04718822"),
        amount: Some(total),
        sender: Some("Rosa Q."),
        extraction: None,
        raw_ocr: Some("¡Yapeaste!"),
    };
    let settled = payments.settle(&acme, &accept("pay_1")).await.unwrap();
    assert_eq!(settled.status, PaymentStatus::Assigned);
    assert_eq!(settled.operation_code.as_deref(), Some("04718822"));
    // A retried settle (worker crash after commit) changes nothing.
    let again = payments.settle(&acme, &accept("pay_1")).await.unwrap();
    assert_eq!(again, settled);
    assert_eq!(paid_orders(&t, &acme).await, vec![o1.order_id.clone()]);

    // The same operation code for another order: rejected as a duplicate, order untouched.
    payments
        .create(&acme, "pay_2", &o2.order_id, "upload:m1")
        .await
        .unwrap();
    let dup = payments.settle(&acme, &accept("pay_2")).await.unwrap();
    assert_eq!(dup.status, PaymentStatus::Rejected);
    assert!(dup.reasons[0].contains("pay_1"), "{:?}", dup.reasons);
    assert_eq!(paid_orders(&t, &acme).await, vec![o1.order_id.clone()]);

    // Another tenant may use the same code (codes are unique per tenant).
    let beta = TenantId::parse("beta").unwrap();
    t.db.tenants().upsert(&beta, "Beta", "main").await.unwrap();
    let (ob, _) =
        t.db.orders()
            .create(new_order(&beta, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    payments
        .create(&beta, "pay_1", &ob.order_id, "upload:m1")
        .await
        .unwrap();
    assert_eq!(
        payments
            .settle(&beta, &accept("pay_1"))
            .await
            .unwrap()
            .status,
        PaymentStatus::Assigned
    );
    assert!(
        payments
            .get(&acme, "pay_1")
            .await
            .unwrap()
            .unwrap()
            .order_id
            == o1.order_id
    );

    // Paying an order that is no longer PENDING needs a person.
    let (o3, _) =
        t.db.orders()
            .create(new_order(&acme, "k3", "h3", "+51911", &lines, total))
            .await
            .unwrap();
    t.db.orders()
        .set_status(
            &acme,
            &o3.order_id,
            zengine_domain::order::OrderStatus::Pending,
            zengine_domain::order::OrderStatus::Cancelled,
        )
        .await
        .unwrap();
    payments
        .create(&acme, "pay_3", &o3.order_id, "upload:m3")
        .await
        .unwrap();
    let late = payments
        .settle(
            &acme,
            &Settlement {
                operation_code: Some("999"),
                ..accept("pay_3")
            },
        )
        .await
        .unwrap();
    assert_eq!(late.status, PaymentStatus::ManualReview);
    assert!(
        late.reasons.iter().any(|r| r.contains("CANCELLED")),
        "{:?}",
        late.reasons
    );
    assert_eq!(
        payments
            .list_for_order(&acme, &o1.order_id)
            .await
            .unwrap()
            .len(),
        1
    );
    t.drop_db().await.unwrap();
}

async fn payment_reviews_move_the_order_and_release_rejected_codes(backend: TestBackend) {
    use zengine_domain::payment::{PaymentStatus, Verdict};
    use zengine_storage::{ReviewError, Settlement};
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let (lines, total) = lines();
    let (o1, _) =
        t.db.orders()
            .create(new_order(&acme, "k1", "h1", "+51911", &lines, total))
            .await
            .unwrap();
    let (o2, _) =
        t.db.orders()
            .create(new_order(&acme, "k2", "h2", "+51911", &lines, total))
            .await
            .unwrap();
    let payments = t.db.payments();
    let review_of = |id: &'static str| Settlement {
        payment_id: id,
        verdict: Verdict::Review,
        reasons: &[],
        operation_code: Some("123456"),
        amount: None,
        sender: None,
        extraction: None,
        raw_ocr: None,
    };
    payments
        .create(&acme, "pay_1", &o1.order_id, "upload:m1")
        .await
        .unwrap();
    let p = payments.settle(&acme, &review_of("pay_1")).await.unwrap();
    assert_eq!(p.status, PaymentStatus::ManualReview);
    // In review, the code is reserved: a second receipt with it is a duplicate.
    payments
        .create(&acme, "pay_2", &o2.order_id, "upload:m2")
        .await
        .unwrap();
    assert_eq!(
        payments
            .settle(&acme, &review_of("pay_2"))
            .await
            .unwrap()
            .status,
        PaymentStatus::Rejected
    );

    let rejected = payments
        .review(&acme, "pay_1", false, "ops", Some("fake"))
        .await
        .unwrap();
    assert_eq!(rejected.status, PaymentStatus::Rejected);
    assert_eq!(rejected.reviewed_by.as_deref(), Some("ops"));
    // The same decision again is harmless; another one is refused.
    assert_eq!(
        payments
            .review(&acme, "pay_1", false, "ops", None)
            .await
            .unwrap()
            .status,
        PaymentStatus::Rejected
    );
    assert!(matches!(
        payments.review(&acme, "pay_1", true, "ops", None).await,
        Err(ReviewError::NotInReview(PaymentStatus::Rejected))
    ));
    assert!(matches!(
        payments.review(&acme, "nope", true, "ops", None).await,
        Err(ReviewError::NotFound(_))
    ));
    // The rejected payment released its code: a new receipt with it can be reviewed and approved.
    payments
        .create(&acme, "pay_3", &o2.order_id, "upload:m3")
        .await
        .unwrap();
    assert_eq!(
        payments
            .settle(&acme, &review_of("pay_3"))
            .await
            .unwrap()
            .status,
        PaymentStatus::ManualReview
    );
    let approved = payments
        .review(&acme, "pay_3", true, "ops", None)
        .await
        .unwrap();
    assert_eq!(approved.status, PaymentStatus::Assigned);
    assert_eq!(paid_orders(&t, &acme).await, vec![o2.order_id.clone()]);
    t.drop_db().await.unwrap();
}

async fn receipt_images_and_payment_settings_round_trip(backend: TestBackend) {
    use zengine_storage::PaymentSettings;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let beta = TenantId::parse("beta").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    t.db.tenants().upsert(&beta, "Beta", "main").await.unwrap();
    let payments = t.db.payments();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let (id, sha) = payments
        .put_media(&acme, "image/png", &bytes)
        .await
        .unwrap();
    let (again, _) = payments
        .put_media(&acme, "image/png", &bytes)
        .await
        .unwrap();
    assert_eq!(id, again, "the same bytes are stored once");
    assert_eq!(sha.len(), 64);
    let (mime, read) = payments.get_media(&acme, &id).await.unwrap().unwrap();
    assert_eq!((mime.as_str(), read), ("image/png", bytes));
    assert!(
        payments.get_media(&beta, &id).await.unwrap().is_none(),
        "tenants do not share media"
    );

    assert_eq!(
        payments.settings(&acme).await.unwrap(),
        PaymentSettings::default()
    );
    let custom = PaymentSettings {
        tolerance_cents: 100,
        review_timeout_secs: 60,
        ..PaymentSettings::default()
    };
    payments.set_settings(&acme, &custom).await.unwrap();
    assert_eq!(payments.settings(&acme).await.unwrap(), custom);
    assert_eq!(
        payments.settings(&beta).await.unwrap(),
        PaymentSettings::default()
    );
    assert!(
        payments
            .settings(&TenantId::parse("ghost").unwrap())
            .await
            .is_err()
    );
    t.drop_db().await.unwrap();
}

async fn channel_accounts_route_dedupe_and_delivery_states_move_forward(backend: TestBackend) {
    use zengine_storage::ChannelAccount;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let beta = TenantId::parse("beta").unwrap();
    for tenant in [&acme, &beta] {
        t.db.tenants().upsert(tenant, "T", "main").await.unwrap();
    }
    let channels = t.db.channels();
    let account = |tenant: &TenantId, key: &str| ChannelAccount {
        strategy: "whatsapp-meta-cloud".into(),
        account_key: key.into(),
        tenant_id: tenant.clone(),
        settings: serde_json::json!({"access_token": "env:TOKEN"}),
    };
    channels
        .upsert_account(&account(&acme, "111"))
        .await
        .unwrap();
    channels
        .upsert_account(&account(&beta, "222"))
        .await
        .unwrap();
    // Another tenant cannot take a number that is routed to a tenant: a typed refusal (the API
    // answers 409 with it when two tenants claim one number at once), and the owner keeps it.
    let taken = channels
        .upsert_account(&account(&beta, "111"))
        .await
        .unwrap_err();
    assert!(
        taken.is::<zengine_storage::AccountTaken>(),
        "not an AccountTaken: {taken:#}"
    );
    assert_eq!(
        channels
            .route("whatsapp-meta-cloud", "111")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        acme
    );
    assert_eq!(
        channels
            .account(&beta, "whatsapp-meta-cloud")
            .await
            .unwrap()
            .unwrap()
            .account_key,
        "222",
        "the refused claim left beta's own account as it was"
    );
    // Replacing an account moves the number.
    channels
        .upsert_account(&account(&acme, "333"))
        .await
        .unwrap();
    assert!(
        channels
            .route("whatsapp-meta-cloud", "111")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        channels
            .route("whatsapp-meta-cloud", "333")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        acme
    );
    assert_eq!(
        channels
            .route("whatsapp-meta-cloud", "222")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        beta
    );
    assert_eq!(
        channels
            .account(&beta, "whatsapp-meta-cloud")
            .await
            .unwrap()
            .unwrap()
            .account_key,
        "222"
    );

    assert!(
        channels
            .first_receipt("whatsapp-meta-cloud", "wamid.1", &acme)
            .await
            .unwrap()
    );
    assert!(
        !channels
            .first_receipt("whatsapp-meta-cloud", "wamid.1", &acme)
            .await
            .unwrap()
    );
    assert!(
        channels
            .seen(&acme, "whatsapp-meta-cloud", "wamid.1")
            .await
            .unwrap()
    );
    assert!(
        !channels
            .seen(&beta, "whatsapp-meta-cloud", "wamid.1")
            .await
            .unwrap(),
        "a receipt is its tenant's"
    );
    channels
        .record_unroutable("wamid.x", "whatsapp-meta-cloud", "999")
        .await
        .unwrap();
    channels
        .record_unroutable("wamid.x", "whatsapp-meta-cloud", "999")
        .await
        .unwrap();
    assert_eq!(
        channels
            .unroutable_count("whatsapp-meta-cloud", "999")
            .await
            .unwrap(),
        1
    );

    let payload = serde_json::json!({"type": "text", "text": "hola"});
    let first = channels
        .begin_send(&acme, "c/out-1", "whatsapp-meta-cloud", "519", &payload)
        .await
        .unwrap();
    assert_eq!((first.state.as_str(), first.attempts), ("PENDING", 1));
    let again = channels
        .begin_send(&acme, "c/out-1", "whatsapp-meta-cloud", "519", &payload)
        .await
        .unwrap();
    assert_eq!(again.attempts, 2);
    // A status that arrives before the send completed links itself through the callback data.
    assert!(
        channels
            .apply_status(&acme, "wamid.out", Some("c/out-1"), "DELIVERED", None)
            .await
            .unwrap()
    );
    let linked = channels.outbound(&acme, "c/out-1").await.unwrap().unwrap();
    assert_eq!(linked.provider_message_id.as_deref(), Some("wamid.out"));
    assert!(
        !channels
            .apply_status(&acme, "wamid.out", None, "SENT", None)
            .await
            .unwrap()
    );
    assert!(
        channels
            .apply_status(&acme, "wamid.out", None, "READ", None)
            .await
            .unwrap()
    );
    assert!(
        !channels
            .apply_status(&acme, "wamid.out", None, "DELIVERED", None)
            .await
            .unwrap()
    );
    // Another tenant cannot see or move it.
    assert!(channels.outbound(&beta, "c/out-1").await.unwrap().is_none());
    assert!(
        !channels
            .apply_status(&beta, "wamid.out", None, "FAILED", None)
            .await
            .unwrap()
    );
    assert_eq!(
        channels
            .outbound(&acme, "c/out-1")
            .await
            .unwrap()
            .unwrap()
            .state,
        "READ"
    );

    channels
        .begin_send(&acme, "c/out-2", "whatsapp-meta-cloud", "519", &payload)
        .await
        .unwrap();
    channels
        .mark_dead(&acme, "c/out-2", "HTTP 400 code 131026")
        .await
        .unwrap();
    let dead = channels.dead_letters(&acme).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, payload);
    assert!(channels.dead_letters(&beta).await.unwrap().is_empty());
    // A message the provider accepted is never dead-lettered afterwards.
    channels
        .mark_sent(&acme, "c/out-2", "wamid.late")
        .await
        .unwrap();
    assert!(channels.dead_letters(&acme).await.unwrap().is_empty());
    channels.mark_dead(&acme, "c/out-2", "late").await.unwrap();
    assert_eq!(
        channels
            .outbound(&acme, "c/out-2")
            .await
            .unwrap()
            .unwrap()
            .state,
        "SENT"
    );
    t.drop_db().await.unwrap();
}

mod assistance_support {
    use zengine_domain::TenantId;
    use zengine_domain::assistance::EventFields;
    use zengine_storage::Database;
    use zengine_storage::assistance::Provider;

    pub fn complete() -> EventFields {
        EventFields {
            category: Some("MEDICAL".into()),
            country: Some("PE".into()),
            city: Some("Cusco".into()),
            beneficiary_name: Some("Ana Quispe".into()),
            beneficiary_phone: Some("+51987654321".into()),
            voucher_code: Some("V-2026-0001".into()),
            description: Some("Fiebre alta desde anoche".into()),
            address: Some("Hotel Plaza, Cusco".into()),
        }
    }

    pub async fn tenant_with_providers(db: &Database, tenant: &str) -> TenantId {
        let tenant = TenantId::parse(tenant).unwrap();
        db.tenants().upsert(&tenant, "T", "main").await.unwrap();
        for (id, name, category, city, active) in [
            ("PRV-1", "Clínica Pardo", "MEDICAL", "Cusco", true),
            ("PRV-2", "Ambulancias Andinas", "TRANSPORT", "Cusco", true),
            ("PRV-3", "Clínica San Borja", "MEDICAL", "Lima", true),
            ("PRV-4", "Clínica Cerrada", "MEDICAL", "Cusco", false),
            ("PRV-5", "100% Dental_Care", "DENTAL", "Bogotá", true),
        ] {
            db.assistance()
                .upsert_provider(
                    &tenant,
                    &Provider {
                        provider_id: id.into(),
                        name: name.into(),
                        category: category.into(),
                        country: "PE".into(),
                        city: city.into(),
                        phone: Some("+5184000000".into()),
                        email: None,
                        active,
                    },
                )
                .await
                .unwrap();
        }
        tenant
    }
}

async fn assistance_catalogues_match_the_state_machines(backend: TestBackend) {
    use zengine_domain::assistance::{EventStatus, ProviderStatus};
    let t = TestDatabase::new(backend).await.unwrap();
    let repo = t.db.assistance();
    let codes = |items: Vec<zengine_storage::assistance::MasterItem>| {
        items.into_iter().map(|i| i.code).collect::<Vec<_>>()
    };
    let statuses = codes(repo.catalogue("event-statuses").await.unwrap().unwrap());
    assert_eq!(
        statuses,
        EventStatus::ALL.map(|s| s.as_str().to_owned()).to_vec()
    );
    let provider_statuses = codes(
        repo.catalogue("eventprovider-statuses")
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        provider_statuses,
        ProviderStatus::ALL.map(|s| s.as_str().to_owned()).to_vec()
    );
    for name in zengine_storage::assistance::CATALOGUES {
        assert!(
            !repo.catalogue(name).await.unwrap().unwrap().is_empty(),
            "{name}"
        );
    }
    let countries = repo.catalogue("countries").await.unwrap().unwrap();
    assert!(countries.iter().any(|c| c.code == "PE" && c.name == "Perú"));
    assert_eq!(repo.catalogue("planets").await.unwrap(), None);
    t.drop_db().await.unwrap();
}

async fn providers_are_searched_by_category_city_and_text(backend: TestBackend) {
    use assistance_support::tenant_with_providers;
    use zengine_storage::assistance::ProviderSearch;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = tenant_with_providers(&t.db, "acme").await;
    let other = tenant_with_providers(&t.db, "other").await;
    let repo = t.db.assistance();
    let ids = |found: Vec<zengine_storage::assistance::Provider>| {
        found.into_iter().map(|p| p.provider_id).collect::<Vec<_>>()
    };
    let search = |category, city, text| ProviderSearch {
        category,
        city,
        text,
        limit: 20,
    };
    // Inactive providers never show; results are ordered by name.
    assert_eq!(
        ids(repo
            .search_providers(&acme, &search(Some("MEDICAL"), None, None))
            .await
            .unwrap()),
        vec!["PRV-1", "PRV-3"]
    );
    // City ignores case and accents, and is a whole-city match.
    assert_eq!(
        ids(repo
            .search_providers(&acme, &search(None, Some("CUSCO"), None))
            .await
            .unwrap()),
        vec!["PRV-2", "PRV-1"]
    );
    assert!(
        repo.search_providers(&acme, &search(None, Some("Cus"), None))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(repo
            .search_providers(&acme, &search(None, Some("bogota"), None))
            .await
            .unwrap()),
        vec!["PRV-5"]
    );
    // Every word must match, accents folded.
    assert_eq!(
        ids(repo
            .search_providers(&acme, &search(None, None, Some("clinica pardo")))
            .await
            .unwrap()),
        vec!["PRV-1"]
    );
    // LIKE wildcards in the text are literal.
    assert_eq!(
        ids(repo
            .search_providers(&acme, &search(None, None, Some("100%")))
            .await
            .unwrap()),
        vec!["PRV-5"]
    );
    assert!(
        repo.search_providers(&acme, &search(None, None, Some("%")))
            .await
            .unwrap()
            .len()
            == 1
    );
    assert!(
        repo.search_providers(&acme, &search(None, None, Some("_")))
            .await
            .unwrap()
            .len()
            == 1
    );
    assert_eq!(
        ids(repo
            .search_providers(&acme, &search(Some("MEDICAL"), Some("Lima"), Some("borja")))
            .await
            .unwrap()),
        vec!["PRV-3"]
    );
    let limited = ProviderSearch {
        limit: 1,
        ..search(None, None, None)
    };
    assert_eq!(
        repo.search_providers(&acme, &limited).await.unwrap().len(),
        1
    );
    // Tenants see their own providers only.
    let both = repo
        .search_providers(&other, &search(None, None, None))
        .await
        .unwrap();
    assert_eq!(both.len(), 4);
    t.drop_db().await.unwrap();
}

async fn drafts_are_created_once_per_key_and_edited_only_as_drafts(backend: TestBackend) {
    use zengine_domain::assistance::StatusWrite;
    use zengine_domain::assistance::{EventFields, EventStatus};
    use zengine_storage::assistance::AssistanceError;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let repo = t.db.assistance();
    let fields = EventFields {
        category: Some("MEDICAL".into()),
        ..EventFields::default()
    };
    let (draft, created) = repo
        .create_draft(&acme, "ase_1", &fields, Some("h1"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(draft.status, EventStatus::Draft);
    let (again, created) = repo
        .create_draft(&acme, "ase_1", &fields, Some("h1"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, draft);
    assert!(matches!(
        repo.create_draft(&acme, "ase_1", &fields, Some("h2")).await,
        Err(AssistanceError::KeyReused)
    ));
    // Codes must be in the catalogues.
    let bad = EventFields {
        category: Some("SPACE".into()),
        country: Some("XX".into()),
        ..EventFields::default()
    };
    match repo.create_draft(&acme, "ase_2", &bad, None).await {
        Err(AssistanceError::Invalid(problems)) => assert_eq!(problems.len(), 2, "{problems:?}"),
        other => panic!("{other:?}"),
    }
    assert!(repo.event(&acme, "ase_2").await.unwrap().is_none());

    let updated = repo
        .update_draft(&acme, "ase_1", &assistance_support::complete())
        .await
        .unwrap();
    assert_eq!(updated.fields.city.as_deref(), Some("Cusco"));
    repo.change_status(
        &acme,
        &StatusWrite {
            change_id: "c-1".into(),
            event_id: "ase_1".into(),
            to: EventStatus::Open,
            source: "test".into(),
            reason: None,
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        repo.update_draft(&acme, "ase_1", &fields).await,
        Err(AssistanceError::Transition(_))
    ));
    assert!(matches!(
        repo.update_draft(&acme, "nope", &fields).await,
        Err(AssistanceError::NotFound(_))
    ));
    t.drop_db().await.unwrap();
}

async fn assistance_status_changes_follow_the_state_machine_once_per_change_id(
    backend: TestBackend,
) {
    use zengine_domain::assistance::StatusWrite;
    use zengine_domain::assistance::{EventFields, EventStatus, TransitionError};
    use zengine_storage::assistance::AssistanceError;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let repo = t.db.assistance();
    let write = |id: &str, to| StatusWrite {
        change_id: id.into(),
        event_id: "ase_1".into(),
        to,
        source: "operator".into(),
        reason: Some("because".into()),
    };
    repo.create_draft(&acme, "ase_1", &EventFields::default(), None)
        .await
        .unwrap();
    // An incomplete draft cannot open; nothing is recorded.
    match repo
        .change_status(&acme, &write("c-1", EventStatus::Open))
        .await
    {
        Err(AssistanceError::Transition(TransitionError::Incomplete(missing))) => {
            assert_eq!(missing.len(), 5)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        repo.status_changes(&acme, "ase_1")
            .await
            .unwrap()
            .is_empty()
    );
    repo.update_draft(&acme, "ase_1", &assistance_support::complete())
        .await
        .unwrap();
    let opened = repo
        .change_status(&acme, &write("c-1", EventStatus::Open))
        .await
        .unwrap();
    assert!(opened.applied);
    assert_eq!(
        (opened.from, opened.to),
        (EventStatus::Draft, EventStatus::Open)
    );
    // The same change id again is the same change, applied once.
    let again = repo
        .change_status(&acme, &write("c-1", EventStatus::Open))
        .await
        .unwrap();
    assert!(!again.applied);
    assert_eq!(repo.status_changes(&acme, "ase_1").await.unwrap().len(), 1);
    // Moves the rules forbid, or that only providers make.
    assert!(matches!(
        repo.change_status(&acme, &write("c-2", EventStatus::Closed))
            .await,
        Err(AssistanceError::Transition(
            TransitionError::NotAllowed { .. }
        ))
    ));
    assert!(matches!(
        repo.change_status(&acme, &write("c-2", EventStatus::InProgress))
            .await,
        Err(AssistanceError::Transition(
            TransitionError::NotManual { .. }
        ))
    ));
    // Solved by phone: OPEN → RESOLVED → CLOSED, each an event of its own.
    repo.change_status(&acme, &write("c-2", EventStatus::Resolved))
        .await
        .unwrap();
    repo.change_status(&acme, &write("c-3", EventStatus::Closed))
        .await
        .unwrap();
    let event = repo.event(&acme, "ase_1").await.unwrap().unwrap();
    assert_eq!(event.status, EventStatus::Closed);
    let changes = repo.status_changes(&acme, "ase_1").await.unwrap();
    assert_eq!(
        changes.iter().map(|c| c.to).collect::<Vec<_>>(),
        vec![
            EventStatus::Open,
            EventStatus::Resolved,
            EventStatus::Closed
        ]
    );
    let events =
        t.db.events()
            .list(&acme, "Assistance.StatusChanged")
            .await
            .unwrap();
    assert_eq!(events.len(), 3);
    assert!(matches!(
        repo.change_status(&acme, &write("c-4", EventStatus::Open))
            .await,
        Err(AssistanceError::Transition(_))
    ));
    t.drop_db().await.unwrap();
}

async fn providers_move_the_event_and_repeat_without_effect(backend: TestBackend) {
    use zengine_domain::assistance::{EventStatus, ProviderStatus, TransitionError};
    use zengine_domain::assistance::{ProviderWrite, StatusWrite};
    use zengine_storage::assistance::AssistanceError;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let repo = t.db.assistance();
    let provider = |change: &str, id: &str| ProviderWrite {
        change_id: change.into(),
        event_id: "ase_1".into(),
        provider_id: id.into(),
        source: "api".into(),
        note: Some("listo".into()),
    };
    repo.create_draft(&acme, "ase_1", &assistance_support::complete(), None)
        .await
        .unwrap();
    // Not while a draft.
    assert!(matches!(
        repo.assign_provider(&acme, &provider("c-1", "PRV-1")).await,
        Err(AssistanceError::Transition(
            TransitionError::EventNotActive { .. }
        ))
    ));
    let open = StatusWrite {
        change_id: "c-open".into(),
        event_id: "ase_1".into(),
        to: EventStatus::Open,
        source: "test".into(),
        reason: None,
    };
    repo.change_status(&acme, &open).await.unwrap();
    assert!(matches!(
        repo.assign_provider(&acme, &provider("c-1", "PRV-4")).await,
        Err(AssistanceError::UnknownProvider(_))
    ));
    assert!(matches!(
        repo.assign_provider(&acme, &provider("c-1", "PRV-404"))
            .await,
        Err(AssistanceError::UnknownProvider(_))
    ));
    let assigned = repo
        .assign_provider(&acme, &provider("c-1", "PRV-1"))
        .await
        .unwrap();
    assert!(assigned.applied);
    assert_eq!(assigned.event_status, EventStatus::ProviderAssigned);
    assert_eq!(assigned.provider.status, ProviderStatus::Assigned);
    let again = repo
        .assign_provider(&acme, &provider("c-2", "PRV-1"))
        .await
        .unwrap();
    assert!(!again.applied);
    assert_eq!(again.provider, assigned.provider);
    // A second provider while the first works; resolving needs a start first.
    repo.assign_provider(&acme, &provider("c-3", "PRV-2"))
        .await
        .unwrap();
    assert!(matches!(
        repo.resolve_provider(&acme, &provider("c-4", "PRV-1"))
            .await,
        Err(AssistanceError::Transition(_))
    ));
    let started = repo
        .start_provider(&acme, &provider("c-4", "PRV-1"))
        .await
        .unwrap();
    assert_eq!(started.event_status, EventStatus::InProgress);
    assert!(
        !repo
            .start_provider(&acme, &provider("c-5", "PRV-1"))
            .await
            .unwrap()
            .applied
    );
    // The first provider resolves; the second is still active, so the event is not resolved.
    let resolved = repo
        .resolve_provider(&acme, &provider("c-6", "PRV-1"))
        .await
        .unwrap();
    assert_eq!(resolved.event_status, EventStatus::InProgress);
    assert_eq!(resolved.provider.resolution.as_deref(), Some("listo"));
    repo.start_provider(&acme, &provider("c-7", "PRV-2"))
        .await
        .unwrap();
    let last = repo
        .resolve_provider(&acme, &provider("c-8", "PRV-2"))
        .await
        .unwrap();
    assert_eq!(last.event_status, EventStatus::Resolved);
    assert!(
        !repo
            .resolve_provider(&acme, &provider("c-9", "PRV-2"))
            .await
            .unwrap()
            .applied
    );
    assert!(matches!(
        repo.start_provider(&acme, &provider("c-9", "PRV-3")).await,
        Err(AssistanceError::NotFound(_))
    ));
    let providers = repo.event_providers(&acme, "ase_1").await.unwrap();
    assert!(
        providers
            .iter()
            .all(|p| p.status == ProviderStatus::Resolved)
    );
    let changes: Vec<_> = repo
        .status_changes(&acme, "ase_1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.to)
        .collect();
    assert_eq!(
        changes,
        vec![
            EventStatus::Open,
            EventStatus::ProviderAssigned,
            EventStatus::InProgress,
            EventStatus::Resolved
        ]
    );
    for kind in [
        "Assistance.ProviderAssigned",
        "Assistance.ProviderStarted",
        "Assistance.ProviderResolved",
    ] {
        assert_eq!(
            t.db.events().list(&acme, kind).await.unwrap().len(),
            2,
            "{kind}"
        );
    }

    // Cancelling an event releases its active providers.
    repo.create_draft(&acme, "ase_2", &assistance_support::complete(), None)
        .await
        .unwrap();
    let mut write = open.clone();
    write.event_id = "ase_2".into();
    write.change_id = "d-open".into();
    repo.change_status(&acme, &write).await.unwrap();
    let mut p = provider("d-1", "PRV-1");
    p.event_id = "ase_2".into();
    repo.assign_provider(&acme, &p).await.unwrap();
    write.change_id = "d-cancel".into();
    write.to = EventStatus::Cancelled;
    let cancelled = repo.change_status(&acme, &write).await.unwrap();
    assert_eq!(cancelled.cancelled_providers.len(), 1);
    assert_eq!(
        repo.event_providers(&acme, "ase_2").await.unwrap()[0].status,
        ProviderStatus::Cancelled
    );
    t.drop_db().await.unwrap();
}

async fn notes_consultations_and_the_log_are_written_once(backend: TestBackend) {
    use zengine_domain::assistance::EventFields;
    use zengine_storage::assistance::{
        AssistanceError, Attachment, LogWrite, NewConsultation, NewNote,
    };
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let repo = t.db.assistance();
    repo.create_draft(&acme, "ase_1", &EventFields::default(), None)
        .await
        .unwrap();
    let note = |id: &'static str, hash: Option<&'static str>, event: &'static str| NewNote {
        note_id: id,
        event_id: event,
        author: "ops",
        source: "api",
        body: "Llamó el hotel",
        request_hash: hash,
    };
    let (first, created) = repo
        .add_note(&acme, &note("not_1", Some("h"), "ase_1"))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = repo
        .add_note(&acme, &note("not_1", Some("h"), "ase_1"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    assert!(matches!(
        repo.add_note(&acme, &note("not_1", Some("other"), "ase_1"))
            .await,
        Err(AssistanceError::KeyReused)
    ));
    assert!(matches!(
        repo.add_note(&acme, &note("not_2", None, "ase_404")).await,
        Err(AssistanceError::NotFound(_))
    ));
    assert_eq!(repo.notes(&acme, "ase_1").await.unwrap().len(), 1);

    let attachment = Attachment {
        key: "acme/phone-consultations/phc_1/abc".into(),
        content_type: "application/pdf".into(),
        size: 5,
        sha256: "abc".into(),
    };
    let consultation = |id: &'static str, hash: Option<&'static str>| NewConsultation {
        consultation_id: id,
        event_id: "ase_1",
        caller_phone: Some("+51987654321"),
        summary: "Orientación médica por teléfono",
        duration_secs: Some(300),
        attachment: Some(&attachment),
        request_hash: hash,
    };
    let (c, created) = repo
        .add_consultation(&acme, &consultation("phc_1", Some("h")))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(c.attachment.as_ref(), Some(&attachment));
    assert!(
        !repo
            .add_consultation(&acme, &consultation("phc_1", Some("h")))
            .await
            .unwrap()
            .1
    );
    assert!(matches!(
        repo.add_consultation(&acme, &consultation("phc_1", None))
            .await,
        Err(AssistanceError::KeyReused)
    ));
    assert_eq!(repo.consultation(&acme, "phc_1").await.unwrap(), Some(c));
    assert_eq!(repo.consultations(&acme, "ase_1").await.unwrap().len(), 1);

    let detail = serde_json::json!({"next": "TrackingMok"});
    let entry = LogWrite {
        event_id: "mok-1",
        step: "Choice",
        assistance_id: Some("ase_1"),
        outcome: "OK",
        detail: &detail,
    };
    assert!(repo.log_step(&acme, &entry).await.unwrap());
    let other = serde_json::json!({"next": "Ignored"});
    assert!(
        !repo
            .log_step(
                &acme,
                &LogWrite {
                    detail: &other,
                    ..entry.clone()
                }
            )
            .await
            .unwrap()
    );
    let log = repo.log(&acme, "mok-1").await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].detail, detail, "the first write wins");
    assert_eq!(
        repo.log_for_assistance(&acme, "ase_1").await.unwrap().len(),
        1
    );
    t.drop_db().await.unwrap();
}

async fn mok_tracking_applies_its_action_and_log_row_together_once(backend: TestBackend) {
    use zengine_domain::assistance::StatusWrite;
    use zengine_domain::assistance::{EventStatus, MokAction, MokEvent, ProviderStatus};
    use zengine_storage::assistance::AssistanceError;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let repo = t.db.assistance();
    repo.create_draft(&acme, "ase_1", &assistance_support::complete(), None)
        .await
        .unwrap();
    repo.change_status(
        &acme,
        &StatusWrite {
            change_id: "c-open".into(),
            event_id: "ase_1".into(),
            to: EventStatus::Open,
            source: "test".into(),
            reason: None,
        },
    )
    .await
    .unwrap();
    let event = |id: &str, action| MokEvent {
        event_id: id.into(),
        source_code: "MOK".into(),
        action,
        assistance_id: Some("ase_1".into()),
        provider: Some("PRV-1".into()),
        note: Some("en camino".into()),
        occurred_at: None,
    };
    // START before CREATE: refused, and neither effect nor log row remains.
    assert!(matches!(
        repo.track_mok(&acme, &event("m-0", MokAction::EventProviderStart), "w/m-0")
            .await,
        Err(AssistanceError::NotFound(_))
    ));
    assert!(repo.log(&acme, "m-0").await.unwrap().is_empty());

    let (created, first) = repo
        .track_mok(
            &acme,
            &event("m-1", MokAction::EventProviderCreate),
            "w/m-1",
        )
        .await
        .unwrap();
    assert!(first && created.applied);
    assert_eq!(created.event_status, EventStatus::ProviderAssigned);
    // A retry returns the stored outcome and changes nothing.
    let (again, first) = repo
        .track_mok(
            &acme,
            &event("m-1", MokAction::EventProviderCreate),
            "w/m-1",
        )
        .await
        .unwrap();
    assert!(!first);
    assert_eq!(again, created);
    let (started, _) = repo
        .track_mok(&acme, &event("m-2", MokAction::EventProviderStart), "w/m-2")
        .await
        .unwrap();
    assert_eq!(
        started.event_provider.unwrap().status,
        ProviderStatus::Started
    );
    let (noted, _) = repo
        .track_mok(&acme, &event("m-3", MokAction::NoteRegister), "w/m-3")
        .await
        .unwrap();
    assert!(noted.note_id.is_some());
    repo.track_mok(&acme, &event("m-3", MokAction::NoteRegister), "w/m-3")
        .await
        .unwrap();
    assert_eq!(repo.notes(&acme, "ase_1").await.unwrap().len(), 1);
    let (resolved, _) = repo
        .track_mok(
            &acme,
            &event("m-4", MokAction::EventProviderResolve),
            "w/m-4",
        )
        .await
        .unwrap();
    assert_eq!(resolved.event_status, EventStatus::Resolved);
    let log = repo.log_for_assistance(&acme, "ase_1").await.unwrap();
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .all(|e| e.step == "TrackingMok" && e.outcome == "OK")
    );
    t.drop_db().await.unwrap();
}

async fn assistance_settings_round_trip_and_reject_bad_rules(backend: TestBackend) {
    use zengine_domain::assistance::AssistanceSettings;
    use zengine_domain::phone::E164;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let repo = t.db.assistance();
    assert_eq!(
        repo.settings(&acme).await.unwrap(),
        AssistanceSettings::default()
    );
    let settings = AssistanceSettings {
        provider_start_sla_secs: 2,
        operator_recipients: vec![E164::parse("+51911111111").unwrap()],
        ..AssistanceSettings::default()
    };
    repo.set_settings(&acme, &settings).await.unwrap();
    assert_eq!(repo.settings(&acme).await.unwrap(), settings);
    let bad = AssistanceSettings {
        provider_start_sla_secs: 0,
        ..settings.clone()
    };
    assert!(repo.set_settings(&acme, &bad).await.is_err());
    assert_eq!(repo.settings(&acme).await.unwrap(), settings);
    assert!(
        repo.settings(&TenantId::parse("ghost").unwrap())
            .await
            .is_err()
    );
    t.drop_db().await.unwrap();
}

async fn api_keys_authenticate_until_revoked_and_stay_in_their_tenant(backend: TestBackend) {
    use zengine_storage::{NewApiKey, Revoked};
    let t = TestDatabase::new(backend).await.unwrap();
    let (a, b) = (
        TenantId::parse("tenant-a").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    for tenant in [&a, &b] {
        t.db.tenants().upsert(tenant, "T", "main").await.unwrap();
    }
    let new = |tenant, name| NewApiKey {
        tenant_id: tenant,
        name,
        role: "operator",
        rate_per_minute: Some(120),
        burst: None,
        created_by: "admin@test",
    };
    let (key, text) = t.db.api_keys().create(new(&a, "shop")).await.unwrap();
    let (_, other_text) = t.db.api_keys().create(new(&b, "b-shop")).await.unwrap();
    assert!(text.starts_with(&format!("zk_{}_", key.key_id)), "{text}");

    // Arrange done; a presented key finds its row (even under RLS, before the tenant is known).
    let found = t.db.api_keys().authenticate(&text).await.unwrap().unwrap();
    assert_eq!(found, key);
    assert_eq!(found.rate_per_minute, Some(120));
    let other =
        t.db.api_keys()
            .authenticate(&other_text)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(other.tenant_id, b);

    // A wrong secret for a real id, or garbage, authenticates nothing.
    let forged = format!("zk_{}_{}", key.key_id, "0".repeat(64));
    assert_eq!(t.db.api_keys().authenticate(&forged).await.unwrap(), None);
    assert_eq!(t.db.api_keys().authenticate("zk_nope").await.unwrap(), None);

    // Listing and revoking stay inside the tenant.
    let listed = t.db.api_keys().list(&a).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["shop"]
    );
    assert_eq!(
        t.db.api_keys().revoke(&b, &key.key_id).await.unwrap(),
        Revoked::NotFound,
        "tenant B cannot revoke tenant A's key"
    );
    assert!(t.db.api_keys().authenticate(&text).await.unwrap().is_some());
    assert!(matches!(
        t.db.api_keys().revoke(&a, &key.key_id).await.unwrap(),
        Revoked::Now(k) if k.revoked_at.is_some()
    ));
    assert!(matches!(
        t.db.api_keys().revoke(&a, &key.key_id).await.unwrap(),
        Revoked::Already(_)
    ));
    assert_eq!(t.db.api_keys().authenticate(&text).await.unwrap(), None);
    assert!(
        t.db.api_keys()
            .authenticate(&other_text)
            .await
            .unwrap()
            .is_some()
    );
    t.drop_db().await.unwrap();
}

/// Moves an order's creation back in time (retention tests).
async fn age_order(db: &zengine_storage::Database, tenant: &TenantId, order_id: &str, at: i64) {
    let mut tx = db.begin_for(tenant).await.unwrap();
    let done = sqlx::query(
        "update sales_order set created_at = $1 where tenant_id = $2 and order_id = $3",
    )
    .bind(at)
    .bind(tenant.as_str())
    .bind(order_id)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    tx.commit().await.unwrap();
}

async fn unlinked_uploads_are_purged_after_their_ttl_and_linked_ones_kept(backend: TestBackend) {
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let beta = TenantId::parse("beta").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    t.db.tenants().upsert(&beta, "Beta", "main").await.unwrap();
    let payments = t.db.payments();
    let (unlinked, _) = payments
        .put_media(&acme, "image/png", b"spam")
        .await
        .unwrap();
    let (beta_unlinked, _) = payments
        .put_media(&beta, "image/png", b"spam")
        .await
        .unwrap();
    let (lines, total) = lines();
    let (order, _) =
        t.db.orders()
            .create(new_order(&acme, "o", "h", "+51987654321", &lines, total))
            .await
            .unwrap();
    let (linked, _) = payments
        .put_media(&acme, "image/png", b"receipt")
        .await
        .unwrap();
    payments
        .create(
            &acme,
            "pay_linked",
            &order.order_id,
            &format!("upload:{linked}"),
        )
        .await
        .unwrap();
    // Nothing is old enough yet.
    let now = chrono::Utc::now().timestamp_millis();
    let retention = t.db.retention();
    assert_eq!(
        retention
            .purge_unlinked_media(&acme, now - 60_000)
            .await
            .unwrap(),
        0
    );
    // A cut-off after every upload: only acme's unlinked one goes.
    assert_eq!(
        retention
            .purge_unlinked_media(&acme, now + 60_000)
            .await
            .unwrap(),
        1
    );
    assert!(
        payments
            .get_media(&acme, &unlinked)
            .await
            .unwrap()
            .is_none()
    );
    assert!(payments.get_media(&acme, &linked).await.unwrap().is_some());
    assert!(
        payments
            .get_media(&beta, &beta_unlinked)
            .await
            .unwrap()
            .is_some()
    );
}

async fn old_orders_are_purged_with_everything_keyed_by_them_once(backend: TestBackend) {
    use zengine_storage::{PurgeCounts, TrackingEvent};
    const DAY: i64 = 24 * 60 * 60 * 1000;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let beta = TenantId::parse("beta").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    t.db.tenants().upsert(&beta, "Beta", "main").await.unwrap();
    let (lines, total) = lines();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut ids = Vec::new();
    for (tenant, key) in [
        (&acme, "old-1"),
        (&acme, "old-2"),
        (&acme, "new"),
        (&beta, "old"),
    ] {
        let (order, _) =
            t.db.orders()
                .create(new_order(tenant, key, "h", "+51987654321", &lines, total))
                .await
                .unwrap();
        ids.push(order.order_id);
    }
    let (old1, old2, recent, beta_old) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    age_order(&t.db, &acme, old1, now - 40 * DAY).await;
    age_order(&t.db, &acme, old2, now - 31 * DAY).await;
    age_order(&t.db, &beta, beta_old, now - 40 * DAY).await;
    let payments = t.db.payments();
    // old-1's receipt is its own; old-2's receipt was also sent for the recent order.
    let (own, _) = payments
        .put_media(&acme, "image/png", b"own")
        .await
        .unwrap();
    let (shared, _) = payments
        .put_media(&acme, "image/png", b"shared")
        .await
        .unwrap();
    let (beta_media, _) = payments
        .put_media(&beta, "image/png", b"own")
        .await
        .unwrap();
    for (tenant, payment, order, media) in [
        (&acme, "pay-1", old1, &own),
        (&acme, "pay-2", old2, &shared),
        (&acme, "pay-3", recent, &shared),
        (&beta, "pay-b", beta_old, &beta_media),
    ] {
        payments
            .create(tenant, payment, order, &format!("upload:{media}"))
            .await
            .unwrap();
    }
    t.db.tracking()
        .record(
            &acme,
            &TrackingEvent {
                event_id: "trk-1".into(),
                order_id: old1.clone(),
                status: "PICKED_UP".into(),
                location: None,
                occurred_at: now - 40 * DAY,
            },
        )
        .await
        .unwrap();

    let cutoff = now - 30 * DAY;
    // One order per batch: the purge takes two transactions.
    let counts =
        t.db.retention()
            .purge_orders_before(&acme, cutoff, 1)
            .await
            .unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            orders: 2,
            order_items: 4,
            payments: 2,
            media_uploads: 1,
            tracking_events: 1,
            unlinked_media: 0,
        }
    );
    let orders = t.db.orders();
    assert!(orders.get(&acme, old1).await.unwrap().is_none());
    assert!(orders.get(&acme, old2).await.unwrap().is_none());
    assert!(orders.get(&acme, recent).await.unwrap().is_some());
    assert!(
        orders.get(&beta, beta_old).await.unwrap().is_some(),
        "another tenant is untouched"
    );
    assert!(
        payments
            .list_for_order(&acme, old1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        payments.list_for_order(&acme, recent).await.unwrap().len(),
        1
    );
    assert_eq!(
        payments
            .list_for_order(&beta, beta_old)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(payments.get_media(&acme, &own).await.unwrap().is_none());
    assert!(
        payments.get_media(&acme, &shared).await.unwrap().is_some(),
        "a receipt a kept payment uses stays"
    );
    assert!(
        payments
            .get_media(&beta, &beta_media)
            .await
            .unwrap()
            .is_some()
    );
    let events =
        t.db.events()
            .list(
                &acme,
                zengine_domain::events::EventType::OrdersPurged.as_str(),
            )
            .await
            .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["orders"], 2);
    assert_eq!(events[0].payload["payments"], 2);

    // Again with the same cut-off (a retried activity): nothing more, no second event.
    let again =
        t.db.retention()
            .purge_orders_before(&acme, cutoff, 1)
            .await
            .unwrap();
    assert_eq!(again, PurgeCounts::default());
    assert_eq!(
        t.db.events()
            .list(
                &acme,
                zengine_domain::events::EventType::OrdersPurged.as_str()
            )
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        t.db.events()
            .list(
                &beta,
                zengine_domain::events::EventType::OrdersPurged.as_str()
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t.db.retention()
            .purge_orders_before(&acme, cutoff, 0)
            .await
            .is_err(),
        "a zero batch is refused"
    );
    t.drop_db().await.unwrap();
}

/// Every repository transaction that reads and then writes, run by many tasks at once on one
/// database, each on its own rows. On SQLite a deferred transaction that read before another
/// writer committed cannot take the write lock and fails with SQLITE_BUSY at once (no
/// `busy_timeout` wait); these take the lock at `BEGIN` instead, so every call succeeds.
async fn concurrent_read_then_write_transactions_all_succeed(backend: TestBackend) {
    use zengine_domain::assistance::EventStatus;
    use zengine_domain::assistance::StatusWrite;
    use zengine_domain::channel::breaker::BreakerSettings;
    use zengine_domain::payment::{PaymentStatus, Verdict};
    use zengine_storage::{HealthChange, NewApiKey, Revoked, Settlement};
    const TASKS: usize = 8;
    const OPS: usize = 10;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let travel = assistance_support::tenant_with_providers(&t.db, "travel").await;
    let (lines, total) = lines();
    let settings = BreakerSettings {
        failure_threshold: 1_000,
        ..BreakerSettings::default()
    };
    let task = |n: usize| {
        let (db, acme, travel, lines, settings) = (&t.db, &acme, &travel, &lines, &settings);
        async move {
            let mut flow = demo_flow();
            flow.id = format!("flow-{n}");
            let (health, breaker) = (format!("health-{n}"), format!("breaker-{n}"));
            for i in 0..OPS {
                // Tenants: the next flow version is read, then inserted.
                let version = db.tenants().publish_flow(acme, &flow).await.unwrap();
                assert_eq!(version as usize, i + 1, "task {n}");
                // Channels: health read then stored (with its event); breaker read then moved.
                let changed = db
                    .channels()
                    .record_health(HealthChange {
                        tenant_id: acme,
                        strategy: &health,
                        status: if i % 2 == 0 { "DOWN" } else { "UP" },
                        detail: "",
                        at: i as i64,
                    })
                    .await
                    .unwrap();
                assert!(changed, "task {n} op {i}");
                let state = db
                    .channels()
                    .breaker_record(acme, &breaker, false, settings, i as i64)
                    .await
                    .unwrap();
                assert_eq!(state.failures as usize, i + 1, "task {n}");
                db.channels()
                    .breaker_admit(acme, &breaker, i as i64)
                    .await
                    .unwrap();
                // API keys: read, then revoked.
                let (key, _) = db
                    .api_keys()
                    .create(NewApiKey {
                        tenant_id: acme,
                        name: "load",
                        role: "operator",
                        rate_per_minute: None,
                        burst: None,
                        created_by: "test",
                    })
                    .await
                    .unwrap();
                assert!(matches!(
                    db.api_keys().revoke(acme, &key.key_id).await.unwrap(),
                    Revoked::Now(_)
                ));
                // Payments: read, then settled; read, then reviewed (the order moves too).
                let client_key = format!("load-{n}-{i}");
                let (order, _) = db
                    .orders()
                    .create(new_order(
                        acme,
                        &client_key,
                        &client_key,
                        "+51911",
                        lines,
                        total,
                    ))
                    .await
                    .unwrap();
                let payment_id = format!("pay-{n}-{i}");
                db.payments()
                    .create(acme, &payment_id, &order.order_id, "upload:m")
                    .await
                    .unwrap();
                let settled = db
                    .payments()
                    .settle(
                        acme,
                        &Settlement {
                            payment_id: &payment_id,
                            verdict: Verdict::Review,
                            reasons: &[],
                            operation_code: None,
                            amount: None,
                            sender: None,
                            extraction: None,
                            raw_ocr: None,
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(settled.status, PaymentStatus::ManualReview);
                let reviewed = db
                    .payments()
                    .review(acme, &payment_id, true, "ops", None)
                    .await
                    .unwrap();
                assert_eq!(reviewed.status, PaymentStatus::Assigned);
                // Assistance: the event and the change id are read, then the status moves.
                let event_id = format!("ase_{n}_{i}");
                db.assistance()
                    .create_draft(travel, &event_id, &assistance_support::complete(), None)
                    .await
                    .unwrap();
                let moved = db
                    .assistance()
                    .change_status(
                        travel,
                        &StatusWrite {
                            change_id: format!("load-{n}-{i}"),
                            event_id,
                            to: EventStatus::Open,
                            source: "load".into(),
                            reason: None,
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(moved.to, EventStatus::Open, "task {n}");
            }
        }
    };
    futures::future::join_all((0..TASKS).map(task)).await;
    assert_eq!(paid_orders(&t, &acme).await.len(), TASKS * OPS);
    t.drop_db().await.unwrap();
}

async fn chatwoot_settings_links_and_posted_messages_stay_in_their_tenant(backend: TestBackend) {
    use zengine_storage::{ChatwootLink, ChatwootSettings};
    let t = TestDatabase::new(backend).await.unwrap();
    let (a, b) = (
        TenantId::parse("cw-a").unwrap(),
        TenantId::parse("cw-b").unwrap(),
    );
    for tenant in [&a, &b] {
        t.db.tenants().upsert(tenant, "T", "main").await.unwrap();
    }
    let repo = t.db.chatwoot();
    assert_eq!(repo.settings(&a).await.unwrap(), None);
    let mut settings = ChatwootSettings {
        base_url: "https://chat.example".into(),
        account_id: 1,
        inbox_id: 2,
        api_token_ref: "env:CW_TOKEN".into(),
        webhook_secret_ref: "file:/run/cw".into(),
    };
    repo.put_settings(&a, &settings).await.unwrap();
    settings.inbox_id = 3;
    repo.put_settings(&a, &settings).await.unwrap();
    assert_eq!(repo.settings(&a).await.unwrap(), Some(settings.clone()));
    assert_eq!(repo.settings(&b).await.unwrap(), None);

    // A link is stored as it grows, and found by its Chatwoot conversation in its tenant only.
    let mut link = ChatwootLink {
        handoff_key: "a/conversation/webchat/s/effect-2".into(),
        workflow_id: "a/conversation/webchat/s".into(),
        channel: "webchat".into(),
        contact: "s".into(),
        ..ChatwootLink::default()
    };
    repo.save_link(&a, &link).await.unwrap();
    link.chatwoot_contact_id = Some(100);
    link.source_id = Some("src".into());
    repo.save_link(&a, &link).await.unwrap();
    link.chatwoot_conversation_id = Some(501);
    repo.save_link(&a, &link).await.unwrap();
    assert_eq!(
        repo.link(&a, &link.handoff_key).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        repo.link_by_conversation(&a, 501).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(repo.link_by_conversation(&b, 501).await.unwrap(), None);
    assert_eq!(repo.link(&b, &link.handoff_key).await.unwrap(), None);

    // Posted messages: the first id stays; echoes are recognised per tenant.
    repo.save_posted(&a, "note/k", 9000).await.unwrap();
    repo.save_posted(&a, "note/k", 9001).await.unwrap();
    assert_eq!(repo.posted(&a, "note/k").await.unwrap(), Some(9000));
    assert_eq!(repo.posted(&b, "note/k").await.unwrap(), None);
    assert!(repo.is_ours(&a, 9000).await.unwrap());
    assert!(!repo.is_ours(&a, 9001).await.unwrap());
    assert!(!repo.is_ours(&b, 9000).await.unwrap());

    assert!(repo.delete_settings(&a).await.unwrap());
    assert!(!repo.delete_settings(&a).await.unwrap());
    t.drop_db().await.unwrap();
}

/// A status storm on one database: 24 sent messages, each getting `sent`, `delivered` and `read`
/// four times over (half with the callback data, half without), all shuffled and applied at
/// once. Every message ends READ, its `read` moved it exactly once, `delivered` at most once
/// (not at all when a `read` got there first), `sent` never. A read-then-write form of the
/// update fails here: on PostgreSQL a `delivered` that read SENT before a `read` committed
/// writes DELIVERED after it; on SQLite a reading transaction cannot take the write lock.
async fn racing_delivery_statuses_never_move_a_message_back(backend: TestBackend) {
    const MESSAGES: usize = 24;
    const COPIES: usize = 4;
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    t.db.tenants().upsert(&acme, "Acme", "main").await.unwrap();
    let channels = t.db.channels();
    let payload = serde_json::json!({"type": "text", "text": "hola"});
    for m in 0..MESSAGES {
        let client = format!("storm/out-{m}");
        channels
            .begin_send(&acme, &client, "whatsapp-meta-cloud", "519", &payload)
            .await
            .unwrap();
        channels
            .mark_sent(&acme, &client, &format!("wamid.storm-{m}"))
            .await
            .unwrap();
    }
    let mut statuses = Vec::new();
    for m in 0..MESSAGES {
        for state in ["SENT", "DELIVERED", "READ"] {
            for copy in 0..COPIES {
                statuses.push((m, state, copy % 2 == 0));
            }
        }
    }
    // A fixed shuffle (xorshift), so a failure can be run again as it was.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..statuses.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        statuses.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let applied = futures::future::join_all(statuses.iter().map(|&(m, state, linked)| {
        let (channels, acme) = (t.db.channels(), &acme);
        async move {
            let client = format!("storm/out-{m}");
            let moved = channels
                .apply_status(
                    acme,
                    &format!("wamid.storm-{m}"),
                    linked.then_some(client.as_str()),
                    state,
                    None,
                )
                .await
                .unwrap_or_else(|e| panic!("{state} of message {m}: {e:#}"));
            (m, state, moved)
        }
    }))
    .await;
    for m in 0..MESSAGES {
        let moves = |state: &str| {
            applied
                .iter()
                .filter(|&&(n, s, moved)| n == m && s == state && moved)
                .count()
        };
        let record = channels
            .outbound(&acme, &format!("storm/out-{m}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, "READ", "message {m}");
        assert_eq!(moves("READ"), 1, "message {m}: `read` moved it once");
        assert!(
            moves("DELIVERED") <= 1,
            "message {m}: `delivered` moved it twice"
        );
        assert_eq!(moves("SENT"), 0, "message {m}: `sent` moved a SENT message");
    }
    t.drop_db().await.unwrap();
}

/// The tables of `public` with a `tenant_id` column, read from the catalog (so a table added
/// later is covered without editing a list).
async fn tenant_tables(db: &zengine_storage::Database) -> Vec<String> {
    sqlx::query_scalar(
        "select c.relname::text from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind = 'r'
            and exists (select 1 from pg_attribute a where a.attrelid = c.oid
                         and a.attname = 'tenant_id' and not a.attisdropped)
          order by 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
}

/// Every table that holds tenants' rows has row-level security that its owner obeys too
/// (`FORCE`) under at least one policy; the tables without a `tenant_id` are the platform's and
/// are named here (each is justified in `docs/security.md`), and the application role cannot
/// change or delete their rows.
#[tokio::test]
async fn postgres_every_tenant_table_forces_row_level_security_under_a_policy() {
    use sqlx::Row;
    let t = TestDatabase::new(TestBackend::Postgres).await.unwrap();
    let rows = sqlx::query(
        "select c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                exists (select 1 from pg_attribute a where a.attrelid = c.oid
                         and a.attname = 'tenant_id' and not a.attisdropped),
                (select count(*) from pg_policy p where p.polrelid = c.oid)::bigint,
                has_table_privilege('zengine_app', c.oid, 'UPDATE')
                  or has_table_privilege('zengine_app', c.oid, 'DELETE')
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind = 'r' and c.relname <> '_sqlx_migrations'
          order by 1",
    )
    .fetch_all(t.db.pool())
    .await
    .unwrap();
    let (mut unconfined, mut platform) = (vec![], vec![]);
    for row in &rows {
        let name: String = row.get(0);
        let (rls, force, tenant_column, policies, writable): (bool, bool, bool, i64, bool) =
            (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        if !tenant_column {
            platform.push((name, writable));
        } else if !(rls && force && policies > 0) {
            unconfined.push(format!(
                "{name} (rls {rls}, force {force}, {policies} policies)"
            ));
        }
    }
    assert!(rows.len() > 30, "{} tables", rows.len());
    assert!(unconfined.is_empty(), "not confined: {unconfined:?}");
    assert_eq!(
        platform,
        [
            ("master_item".to_owned(), false),
            ("unroutable_webhook".to_owned(), false)
        ],
        "platform tables, and whether the application role may change them"
    );
    t.drop_db().await.unwrap();
}

/// As the role `zengine api` / `zengine worker` log in as, under tenant A's context: no SQL it
/// can run shows or changes another tenant's row in any tenant table — not by leaving its role
/// (`RESET ROLE`, `SET ROLE postgres`), nor in the channel routing tables.
#[tokio::test]
async fn postgres_the_runtime_role_sees_only_the_current_tenant_whatever_sql_it_runs() {
    use zengine_storage::ChannelAccount;
    let t = TestDatabase::new(TestBackend::PostgresRls).await.unwrap();
    let (a, b) = (
        TenantId::parse("tenant-a").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    let (lines, total) = lines();
    for (tenant, key) in [(&a, "111"), (&b, "222")] {
        t.db.tenants().upsert(tenant, "T", "main").await.unwrap();
        t.db.orders()
            .create(new_order(tenant, "k1", "h1", "+51911000001", &lines, total))
            .await
            .unwrap();
        let channels = t.db.channels();
        channels
            .upsert_account(&ChannelAccount {
                strategy: "whatsapp-meta-cloud".into(),
                account_key: key.into(),
                tenant_id: tenant.clone(),
                settings: serde_json::json!({"access_token": "secret:TOKEN"}),
            })
            .await
            .unwrap();
        assert!(
            channels
                .first_receipt("whatsapp-meta-cloud", &format!("wamid.{key}"), tenant)
                .await
                .unwrap()
        );
    }
    let tables = tenant_tables(&t.db).await;
    assert!(tables.contains(&"channel_account".to_owned()), "{tables:?}");

    for escape in [
        "select 1",
        "reset role",
        "set session authorization default",
    ] {
        let mut tx = t.db.begin_for(&a).await.unwrap();
        // An escape the role may not take aborts the transaction: then nothing is read at all.
        if sqlx::query(escape).execute(&mut *tx).await.is_err() {
            continue;
        }
        for table in &tables {
            let foreign: i64 = sqlx::query_scalar(&format!(
                "select count(*) from {table} where tenant_id <> 'tenant-a'"
            ))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(
                foreign, 0,
                "after `{escape}`, {table} shows another tenant's rows"
            );
        }
        tx.rollback().await.unwrap();
    }

    let mut tx = t.db.begin_for(&a).await.unwrap();
    assert!(
        sqlx::query("set role postgres")
            .execute(&mut *tx)
            .await
            .is_err(),
        "the runtime role cannot become the superuser"
    );
    tx.rollback().await.unwrap();

    // Webhook routing still finds either tenant's account by its key, and only that one.
    let routed = t.db.channels().route("whatsapp-meta-cloud", "222").await;
    assert_eq!(routed.unwrap().unwrap().tenant_id, b);

    // The schema's owner (the migration role, not a superuser) obeys the policies too (FORCE):
    // without a tenant context it sees no tenant's rows, under A's only A's.
    let owner = zengine_storage::Database::connect(&t.owner_url, 1)
        .await
        .unwrap();
    for table in &tables {
        let seen: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(owner.pool())
            .await
            .unwrap();
        assert_eq!(seen, 0, "the owner reads {table} without a tenant context");
    }
    let mut tx = owner.begin_for(&a).await.unwrap();
    let foreign: i64 =
        sqlx::query_scalar("select count(*) from sales_order where tenant_id <> 'tenant-a'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(foreign, 0);
    tx.rollback().await.unwrap();
    owner.close().await;
    t.drop_db().await.unwrap();
}

/// A managed PostgreSQL that only speaks TLS: `sslmode=verify-full` with the server's CA
/// connects (and the session is encrypted), a wrong CA is refused naming the certificate, and
/// `sslmode=disable` is turned away by the server.
#[tokio::test]
async fn postgres_over_tls_verifies_the_server_against_the_configured_ca() {
    use zengine_storage::Database;
    use zengine_storage::testing::TlsPostgres;
    let server = TlsPostgres::start().unwrap();
    let verified = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        server.ca.display()
    ));
    let db = Database::connect(&verified, 1).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(encrypted);
    db.migrate().await.unwrap();
    db.close().await;

    let wrong = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        server.wrong_ca.display()
    ));
    let error = format!("{:#}", Database::connect(&wrong, 1).await.unwrap_err());
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );

    let plain = server.url("sslmode=disable");
    let error = format!("{:#}", Database::connect(&plain, 1).await.unwrap_err());
    assert!(error.contains("no encryption"), "{error}");
}

/// A PostgreSQL that authenticates by client certificate (`cert`): the role's certificate
/// logs in, and one that has expired stops start-up with one line naming `sslcert` and the
/// date, before any connection is tried (the server's own answer is a TLS alert that names
/// nothing). A missing key file names `sslkey`.
#[tokio::test]
async fn postgres_client_certificates_log_in_and_an_expired_one_is_named() {
    use zengine_storage::Database;
    use zengine_storage::testing::TlsPostgres;
    let server = TlsPostgres::start().unwrap();
    let admin = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        server.ca.display()
    ));
    let db = Database::connect(&admin, 1).await.unwrap();
    sqlx::query("create role certuser login")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let as_certuser = |crt: &std::path::Path, key: &std::path::Path| {
        format!(
            "postgres://certuser@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}\
             &sslcert={}&sslkey={}",
            server.port,
            server.ca.display(),
            crt.display(),
            key.display()
        )
    };

    let (crt, key) = server.client_cert("certuser", "certuser", 2).unwrap();
    let db = Database::connect(&as_certuser(&crt, &key), 1)
        .await
        .unwrap();
    let user: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(user, "certuser");
    db.close().await;

    let (old_crt, old_key) = server.client_cert("expired", "certuser", -1).unwrap();
    let error = format!(
        "{:#}",
        Database::connect(&as_certuser(&old_crt, &old_key), 1)
            .await
            .unwrap_err()
    );
    assert!(
        error.contains("sslcert") && error.contains("(CN=certuser) expired on"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");

    let missing = std::path::Path::new("/nonexistent/client.key");
    let error = format!(
        "{:#}",
        Database::connect(&as_certuser(&crt, missing), 1)
            .await
            .unwrap_err()
    );
    assert!(error.contains("sslkey"), "{error}");
}

/// Writers racing on the *same* key (the audit of read-then-write repository methods): on
/// PostgreSQL under READ COMMITTED each of these read a value, decided, then wrote — so two at
/// once could both pass the check. SQLite serialises writers and passed before too.
async fn writers_racing_on_one_key_lose_nothing(backend: TestBackend) {
    use zengine_domain::assistance::{EventStatus, ProviderWrite, StatusWrite};
    use zengine_storage::{NewApiKey, Recorded as TrackingRecorded, Revoked, TrackingEvent};
    let t = TestDatabase::new(backend).await.unwrap();
    let acme = assistance_support::tenant_with_providers(&t.db, "acme").await;
    let (lines, total) = lines();

    // Orders created at once in one tenant each get their own number (a partner's batch
    // import): the number is max + 1, so they collided and gave up after 5 attempts.
    let keys: Vec<String> = (0..24).map(|i| format!("batch-{i}")).collect();
    let created = futures::future::join_all(keys.iter().map(|key| {
        let (db, acme, lines) = (&t.db, &acme, &lines);
        async move {
            db.orders()
                .create(new_order(acme, key, "h", "+51911", lines, total))
                .await
        }
    }))
    .await;
    let order_id = created[0].as_ref().unwrap().0.order_id.clone();
    let mut numbers: Vec<i64> = created
        .into_iter()
        .map(|r| {
            let (order, fresh) = r.unwrap_or_else(|e| panic!("a concurrent create failed: {e}"));
            assert!(fresh);
            order.order_number
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 24);

    // A tracking event retried while the first call still runs: one is new, the rest are
    // duplicates — never an error (it was a 500 on the primary key).
    let event = TrackingEvent {
        event_id: "trk-1".into(),
        order_id,
        status: "DISPATCHED".into(),
        location: None,
        occurred_at: 1_000,
    };
    let recorded = futures::future::join_all((0..8).map(|_| {
        let (db, acme, event) = (&t.db, &acme, &event);
        async move { db.tracking().record(acme, event).await }
    }))
    .await;
    let recorded: Vec<TrackingRecorded> = recorded
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a concurrent record failed: {e:#}")))
        .collect();
    assert_eq!(
        recorded
            .iter()
            .filter(|r| **r == TrackingRecorded::New)
            .count(),
        1,
        "{recorded:?}"
    );

    // One key revoked by two admins at once: revoked once, one audit-worthy answer.
    let (key, _) =
        t.db.api_keys()
            .create(NewApiKey {
                tenant_id: &acme,
                name: "shop",
                role: "operator",
                rate_per_minute: None,
                burst: None,
                created_by: "test",
            })
            .await
            .unwrap();
    let revoked = futures::future::join_all((0..8).map(|_| {
        let (db, acme, key_id) = (&t.db, &acme, &key.key_id);
        async move { db.api_keys().revoke(acme, key_id).await }
    }))
    .await;
    let now = revoked
        .iter()
        .filter(|r| matches!(r, Ok(Revoked::Now(_))))
        .count();
    assert_eq!(now, 1, "{revoked:?}");

    // Sends failing at once through one breaker: every failure is counted (a stale read lost
    // them, and the circuit opened late).
    let settings = zengine_domain::channel::breaker::BreakerSettings {
        failure_threshold: 1_000,
        ..Default::default()
    };
    let failures = futures::future::join_all((0..8).map(|i| {
        let (db, acme, settings) = (&t.db, &acme, &settings);
        async move {
            db.channels()
                .breaker_record(acme, "sns-sms", false, settings, i)
                .await
                .unwrap()
        }
    }))
    .await;
    let most = failures.iter().map(|b| b.failures).max().unwrap();
    assert_eq!(most, 8, "{failures:?}");

    // Two providers of one event resolve at once: the last one to finish resolves the event.
    let repo = t.db.assistance();
    repo.create_draft(&acme, "ase_r", &assistance_support::complete(), None)
        .await
        .unwrap();
    repo.change_status(
        &acme,
        &StatusWrite {
            change_id: "r-open".into(),
            event_id: "ase_r".into(),
            to: EventStatus::Open,
            source: "test".into(),
            reason: None,
        },
    )
    .await
    .unwrap();
    let write = |change: &str, id: &str| ProviderWrite {
        change_id: change.into(),
        event_id: "ase_r".into(),
        provider_id: id.into(),
        source: "api".into(),
        note: Some("listo".into()),
    };
    for (i, id) in ["PRV-1", "PRV-2"].iter().enumerate() {
        repo.assign_provider(&acme, &write(&format!("a-{i}"), id))
            .await
            .unwrap();
        repo.start_provider(&acme, &write(&format!("s-{i}"), id))
            .await
            .unwrap();
    }
    let (r1, r2) = (write("r-1", "PRV-1"), write("r-2", "PRV-2"));
    let (one, two) = tokio::join!(
        repo.resolve_provider(&acme, &r1),
        repo.resolve_provider(&acme, &r2),
    );
    one.unwrap();
    two.unwrap();
    let event = repo.event(&acme, "ase_r").await.unwrap().unwrap();
    assert_eq!(event.status, EventStatus::Resolved, "{event:?}");
}
