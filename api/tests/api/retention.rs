//! The retention purge on a real worker and Temporal dev server: orders older than their
//! tenant's `retention_days` go with their items, payments and receipt images; recent orders and
//! other tenants' stay; a second run purges nothing; the daily schedule exists.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use temporalio_client::{WorkflowGetResultOptions, WorkflowIdReusePolicy, WorkflowStartOptions};
use zengine_domain::TenantId;
use zengine_storage::{PaymentSettings, PurgeCounts};
use zengine_workflows::RetentionPurgeWorkflow;
use zengine_workflows::names::queues;
use zengine_workflows::retention::{RetentionReport, RetentionScope};

use crate::channels::create_tenant;
use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app};
use crate::histories::record;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Creates an order through the API, then moves its creation `age_days` back in the database.
async fn old_order(app: &TestApp, tenant: &TenantId, key: &str, age_days: i64) -> String {
    let response = app
        .http
        .post(format!("{}/v1/orders", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", tenant.as_str())
        .json(&json!({
            "client_order_key": key,
            "customer": {"phone": "+51 911 222 333", "name": "Ana"},
            "type": "pickup",
            "items": [
                {"sku": "lomo", "name": "Lomo saltado", "quantity": 2, "unit_price": "28.00"},
                {"name": "Chicha", "quantity": 1, "unit_price": "6.50"}
            ]
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["order_id"].as_str().unwrap().to_owned();
    let db = &app.database.as_ref().unwrap().db;
    let mut tx = db.begin_for(tenant).await.unwrap();
    let done = sqlx::query(
        "update sales_order set created_at = $1 where tenant_id = $2 and order_id = $3",
    )
    .bind(now_ms() - age_days * DAY_MS)
    .bind(tenant.as_str())
    .bind(&id)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    tx.commit().await.unwrap();
    // A receipt image and its payment.
    let (media, _) = db
        .payments()
        .put_media(tenant, "image/png", format!("receipt of {key}").as_bytes())
        .await
        .unwrap();
    db.payments()
        .create(
            tenant,
            &format!("pay-{key}"),
            &id,
            &format!("upload:{media}"),
        )
        .await
        .unwrap();
    id
}

async fn order_status(app: &TestApp, tenant: &TenantId, id: &str) -> StatusCode {
    app.http
        .get(format!("{}/v1/orders/{id}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", tenant.as_str())
        .send()
        .await
        .unwrap()
        .status()
}

async fn purge(app: &TestApp, workflow_id: &str) -> RetentionReport {
    let queue = app.temporal_settings.task_queue(queues::PAYMENTS);
    let options = WorkflowStartOptions::new(queue, workflow_id.to_owned())
        .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
        .build();
    app.temporal
        .start_workflow(
            RetentionPurgeWorkflow::run,
            RetentionScope::default(),
            options,
        )
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        app.temporal
            .get_workflow_handle::<RetentionPurgeWorkflow>(workflow_id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the purge ends")
    .unwrap()
}

fn counts_of(report: &RetentionReport, tenant: &TenantId) -> PurgeCounts {
    report
        .tenants
        .iter()
        .find(|t| t.tenant_id == *tenant)
        .unwrap_or_else(|| panic!("{tenant} in {report:?}"))
        .counts
        .expect("the tenant's purge succeeded")
}

#[tokio::test]
async fn old_orders_are_purged_per_tenant_retention_once() {
    let app = spawn_app().await;
    let db = &app.database.as_ref().unwrap().db;
    let demo = TenantId::parse("demo").unwrap();
    // `brief` keeps orders one day; `demo` the default 30.
    let brief = create_tenant(&app, "brief").await;
    db.payments()
        .set_settings(
            &brief,
            &PaymentSettings {
                retention_days: 1,
                ..PaymentSettings::default()
            },
        )
        .await
        .unwrap();
    let demo_old = old_order(&app, &demo, "demo-old", 40).await;
    let demo_week = old_order(&app, &demo, "demo-week", 5).await;
    let brief_week = old_order(&app, &brief, "brief-week", 5).await;
    let brief_new = old_order(&app, &brief, "brief-new", 0).await;

    let started = now_ms();
    let workflow_id = format!("retention-test-{}", uuid::Uuid::new_v4());
    let report = purge(&app, &workflow_id).await;
    let one = PurgeCounts {
        orders: 1,
        order_items: 2,
        payments: 1,
        media_uploads: 1,
        tracking_events: 0,
        unlinked_media: 0,
    };
    assert_eq!(counts_of(&report, &demo), one, "{report:?}");
    assert_eq!(counts_of(&report, &brief), one, "{report:?}");
    let demo_cutoff = report
        .tenants
        .iter()
        .find(|t| t.tenant_id == demo)
        .unwrap()
        .cutoff_ms;
    assert!(
        (started - 30 * DAY_MS - 5_000..=now_ms() - 30 * DAY_MS).contains(&demo_cutoff),
        "the cut-off is the workflow's time minus 30 days: {demo_cutoff}"
    );
    for (tenant, id, expected) in [
        (&demo, &demo_old, StatusCode::NOT_FOUND),
        (&demo, &demo_week, StatusCode::OK),
        (&brief, &brief_week, StatusCode::NOT_FOUND),
        (&brief, &brief_new, StatusCode::OK),
    ] {
        assert_eq!(
            order_status(&app, tenant, id).await,
            expected,
            "{tenant} {id}"
        );
    }
    assert!(
        db.payments()
            .list_for_order(&demo, &demo_old)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.payments()
            .list_for_order(&demo, &demo_week)
            .await
            .unwrap()
            .len(),
        1
    );
    for tenant in [&demo, &brief] {
        let events = db
            .events()
            .list(
                tenant,
                zengine_domain::events::EventType::OrdersPurged.as_str(),
            )
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{tenant}: {events:?}");
        assert_eq!(events[0].payload["orders"], 1);
        assert_eq!(events[0].payload["payments"], 1);
    }
    record(&app, &workflow_id, "retention__purged").await;

    // A second run finds nothing to purge and records no event.
    let again = purge(&app, &format!("retention-test-{}", uuid::Uuid::new_v4())).await;
    assert_eq!(counts_of(&again, &demo), PurgeCounts::default());
    assert_eq!(counts_of(&again, &brief), PurgeCounts::default());
    for tenant in [&demo, &brief] {
        assert_eq!(
            db.events()
                .list(
                    tenant,
                    zengine_domain::events::EventType::OrdersPurged.as_str()
                )
                .await
                .unwrap()
                .len(),
            1
        );
    }
    assert_eq!(order_status(&app, &demo, &demo_week).await, StatusCode::OK);

    // The worker created the daily schedule of this deployment.
    let id = zengine_domain::workflow_ids::retention(&app.temporal_settings.task_queue_prefix);
    let mut description = None;
    for _ in 0..50 {
        if let Ok(d) = app
            .temporal
            .get_schedule_handle(id.clone())
            .describe(Default::default())
            .await
        {
            description = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let next = description
        .expect("the retention schedule exists")
        .future_action_times();
    assert!(next.len() >= 2, "{next:?}");
    assert_eq!(
        next[1].duration_since(next[0]).unwrap(),
        Duration::from_secs(24 * 60 * 60)
    );
    app.shutdown().await;
}
