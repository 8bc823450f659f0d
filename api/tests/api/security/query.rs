//! Security: a viewer's free visibility query must not reach another tenant's workflows.
//!
//! The attack hides a closing parenthesis and an `OR` behind SQL comments: a quote and
//! parenthesis count sees one balanced expression, Temporal drops the comments and runs
//! `TenantId = 'a' AND (WorkflowId = 'x') OR (WorkflowId != 'x')`, which lists every tenant.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use zengine_api::grpc::proto;
use zengine_api::grpc::proto::operations_client::OperationsClient;

use crate::auth::{add_tenant, hs256_options, token, unique_tenant};
use crate::helpers::{TestApp, spawn_app_with};
use crate::ops::order_workflow;

/// The query of the report, byte for byte.
const ATTACK: &str = "WorkflowId = 'x' /* ' */ ) OR ( WorkflowId != 'x' /* '  */";

/// `GET /v1/ops/workflows?query=<query>` (URL-encoded) as `token`.
async fn list(app: &TestApp, query: &str, token: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(format!("{}/v1/ops/workflows", app.address))
        .query(&[("query", query), ("page_size", "1000")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn ids(body: &Value) -> Vec<String> {
    body["workflows"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|w| w["workflow_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Lists with `query` until `id` shows (visibility is eventually consistent).
async fn wait_listed(app: &TestApp, query: &str, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = list(app, query, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if ids(&body).iter().any(|listed| listed == id) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "`{query}` never listed {id}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_commented_out_parenthesis_does_not_list_other_tenants_workflows() {
    let mut options = hs256_options();
    options.api.grpc_addr = "127.0.0.1:0".into();
    let app = spawn_app_with(options).await;
    let (mine, other) = (unique_tenant("qa"), unique_tenant("qb"));
    add_tenant(&app, &mine).await;
    add_tenant(&app, &other).await;
    let my_order = order_workflow(&app, &mine, "query-1").await;
    let their_order = order_workflow(&app, &other, "query-1").await;
    let viewer = token(&mine, "viewer");

    // Both workflows are indexed before the attack, so a leak would show.
    wait_listed(&app, "", &token(&other, "viewer"), &their_order).await;
    wait_listed(&app, "", &viewer, &my_order).await;

    // REST: refused with 400 and the position of the comment; nothing of the other tenant.
    let mut leaks = Vec::new();
    let (status, body) = list(&app, ATTACK, &viewer).await;
    if status != StatusCode::BAD_REQUEST || body.to_string().contains(&other) {
        leaks.push(format!("REST answered {status}: {body}"));
    } else {
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("at 17"), "{body}");
    }

    // gRPC ListWorkflows: InvalidArgument, no workflows.
    let channel = Channel::from_shared(app.grpc_address.clone().expect("gRPC enabled"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC service");
    let mut client = OperationsClient::new(channel);
    let mut request = tonic::Request::new(proto::ListWorkflowsRequest {
        query: ATTACK.into(),
        page_size: 1000,
        ..proto::ListWorkflowsRequest::default()
    });
    let bearer: MetadataValue<_> = format!("Bearer {viewer}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    match client.list_workflows(request).await {
        Err(status) if status.code() == Code::InvalidArgument => {
            assert!(status.message().contains("at 17"), "{status:?}")
        }
        Err(status) => leaks.push(format!("gRPC answered {status:?}")),
        Ok(page) => {
            let listed: Vec<_> = page
                .into_inner()
                .workflows
                .into_iter()
                .map(|w| w.workflow_id)
                .collect();
            leaks.push(format!("gRPC listed {listed:?}"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");

    // A legitimate free query still lists the tenant's own workflows, and only those.
    let own = wait_listed(
        &app,
        "WorkflowType = 'Order' AND ExecutionStatus = 'Running'",
        &viewer,
        &my_order,
    )
    .await;
    assert!(
        ids(&own)
            .iter()
            .all(|id| id.starts_with(&format!("{mine}/"))),
        "{own}"
    );
    let prefix = format!("WorkflowId STARTS_WITH '{mine}/order/' OR WorkflowId = '{their_order}'");
    let own = wait_listed(&app, &prefix, &viewer, &my_order).await;
    assert!(!own.to_string().contains(&their_order), "{own}");
}
