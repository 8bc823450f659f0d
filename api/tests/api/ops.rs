//! The operator API under `/v1/ops` against real workflows: tenant-confined lists and describes,
//! readable histories with decoded payloads, typed actions, cancel, terminate and reset.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::auth::{add_tenant, call, hs256_options, token, unique_tenant};
use crate::helpers::{ADMIN_TOKEN, TestApp, error_code, spawn_app_with};

/// A workflow id as a path segment.
pub fn enc(id: &str) -> String {
    id.replace('/', "%2F")
}

/// Creates a pickup order for `tenant` through the API; returns its workflow id.
pub async fn order_workflow(app: &TestApp, tenant: &str, key: &str) -> String {
    let body = json!({
        "client_order_key": key,
        "customer": {"phone": "+51911222333", "name": "Ana"},
        "type": "pickup",
        "items": [{"sku": "lomo", "name": "Lomo saltado", "quantity": 1, "unit_price": "28.00"}],
    });
    let response = call(
        app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(ADMIN_TOKEN),
        Some(tenant),
        Some(body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    format!("{tenant}/order/{}", order["order_id"].as_str().unwrap())
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let response = call(app, reqwest::Method::GET, path, Some(token), None, None).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Sends a webchat message to `tenant`'s bot.
pub async fn say(app: &TestApp, tenant: &str, session: &str, text: &str) -> Value {
    let body = json!({"session_id": session, "text": text}).to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let response = app.post_webchat_raw(Some(tenant), Some(&key), body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Lists until `predicate` holds on the ids (visibility is eventually consistent).
async fn list_until(
    app: &TestApp,
    query: &str,
    token: &str,
    predicate: impl Fn(&[String]) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_json(app, &format!("/v1/ops/workflows?{query}"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids: Vec<String> = body["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["workflow_id"].as_str().unwrap().to_owned())
            .collect();
        if predicate(&ids) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "list `{query}` stayed at {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Describes until the workflow's state query answers.
async fn describe_until_state(app: &TestApp, id: &str, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_json(app, &format!("/v1/ops/workflows/{}", enc(id)), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body.get("state").is_some() {
            return body;
        }
        assert!(Instant::now() < deadline, "no state: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn the_ops_api_lists_describes_and_reads_histories_only_inside_the_tenant() {
    let app = spawn_app_with(hs256_options()).await;
    // Tests share one Temporal namespace: this one's tenants are its own.
    let (mine, other) = (unique_tenant("ops"), unique_tenant("acme"));
    add_tenant(&app, &mine).await;
    add_tenant(&app, &other).await;
    let viewer = token(&mine, "viewer");
    let demo_order = order_workflow(&app, &mine, "ops-1").await;
    let demo_order_2 = order_workflow(&app, &mine, "ops-2").await;
    let acme_order = order_workflow(&app, &other, "ops-1").await;
    say(&app, &mine, "ops-chat", "hola").await;
    let chat = format!("{mine}/conversation/webchat/ops-chat");

    // The list holds demo's workflows and never acme's, whatever the free query says.
    let all = list_until(&app, "", &viewer, |ids| {
        ids.contains(&demo_order) && ids.contains(&demo_order_2) && ids.contains(&chat)
    })
    .await;
    assert!(!all.to_string().contains(&format!("{other}/")), "{all}");
    // Naming `TenantId` in the free query is refused outright (the tenant is the caller's).
    let escape =
        format!("query=WorkflowType%20%3D%20%27Order%27%20OR%20TenantId%20%3D%20%27{other}%27");
    let response = call(
        &app,
        reqwest::Method::GET,
        &format!("/v1/ops/workflows?{escape}"),
        Some(&viewer),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::BAD_REQUEST).await,
        "invalid_field"
    );
    let acme = list_until(&app, "", &token(&other, "viewer"), |ids| {
        ids.contains(&acme_order)
    })
    .await;
    assert!(!acme.to_string().contains(&format!("{mine}/")), "{acme}");

    // Filters and pagination.
    let orders = list_until(&app, "type=Order&status=running", &viewer, |ids| {
        ids.len() == 2
    })
    .await;
    assert!(
        orders["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["type"] == "Order" && w["status"] == "Running")
    );
    let first = list_until(&app, "type=Order&page_size=1", &viewer, |ids| {
        ids.len() == 1
    })
    .await;
    let next = first["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = list_until(
        &app,
        &format!("type=Order&page_size=1&page_token={next}"),
        &viewer,
        |ids| ids.len() == 1,
    )
    .await;
    assert_ne!(
        first["workflows"][0]["workflow_id"],
        second["workflows"][0]["workflow_id"]
    );
    let later = list_until(&app, "started_after=2999-01-01T00:00:00Z", &viewer, |ids| {
        ids.is_empty()
    })
    .await;
    assert_eq!(later["next_page_token"], Value::Null);

    // Malformed filters are 400s.
    for bad in [
        "query=x%20%3D%201)%20OR%20(TenantId%20%3D%20%27other%27",
        "query=WorkflowType%20%3D%20%27unterminated",
        "status=Sleeping",
        "started_after=yesterday",
        "page_size=0",
        "page_size=5000",
        "page_token=%25%25%25",
        "colour=red",
    ] {
        let response = call(
            &app,
            reqwest::Method::GET,
            &format!("/v1/ops/workflows?{bad}"),
            Some(&viewer),
            None,
            None,
        )
        .await;
        assert_eq!(
            error_code(response, StatusCode::BAD_REQUEST).await,
            "invalid_field",
            "{bad}"
        );
    }

    // Describe: status, type, the workflow's own state and the actions it takes.
    let detail = describe_until_state(&app, &demo_order, &viewer).await;
    assert_eq!(
        (detail["type"].as_str(), detail["status"].as_str()),
        (Some("Order"), Some("Running"))
    );
    assert_eq!(detail["state"]["status"], "PENDING");
    assert_eq!(detail["actions"], json!(["change_order_status"]));
    assert!(detail["history_length"].as_i64().unwrap() >= 3, "{detail}");
    let chat_detail = describe_until_state(&app, &chat, &viewer).await;
    assert_eq!(chat_detail["state"]["mode"], "BOT");
    assert_eq!(chat_detail["state"]["turns"], 1);

    // Another tenant's workflow is "not found", exactly like one that does not exist.
    for id in [
        acme_order.clone(),
        format!("{mine}/order/nope"),
        format!("{other}/conversation/webchat/x"),
    ] {
        for suffix in ["", "/history"] {
            let path = format!("/v1/ops/workflows/{}{suffix}", enc(&id));
            let response = call(&app, reqwest::Method::GET, &path, Some(&viewer), None, None).await;
            assert_eq!(
                error_code(response, StatusCode::NOT_FOUND).await,
                "not_found",
                "{path}"
            );
        }
    }

    // History: readable event names, times, durations, payloads decoded to JSON.
    let (status, history) = get_json(
        &app,
        &format!("/v1/ops/workflows/{}/history", enc(&chat)),
        &viewer,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let events = history["events"].as_array().unwrap();
    assert_eq!(events[0]["event_type"], "WorkflowExecutionStarted");
    assert_eq!(
        events[0]["details"]["input"][0]["conversation"]["tenant"],
        mine.as_str(),
        "{}",
        events[0]
    );
    assert!(events[1]["since_previous_ms"].is_i64());
    let accepted = events
        .iter()
        .find(|e| e["event_type"] == "WorkflowExecutionUpdateAccepted")
        .expect("the message's update");
    assert!(accepted.to_string().contains("\"hola\""), "{accepted}");
    let completed = events
        .iter()
        .find(|e| e["event_type"] == "WorkflowTaskCompleted")
        .expect("a completed workflow task");
    assert!(completed["since_scheduled_ms"].is_i64(), "{completed}");
    let (_, page) = get_json(
        &app,
        &format!("/v1/ops/workflows/{}/history?page_size=2", enc(&chat)),
        &viewer,
    )
    .await;
    // The page size is a hint: Temporal keeps events of one batch together.
    let first_page = page["events"].as_array().unwrap();
    assert!((2..events.len()).contains(&first_page.len()), "{page}");
    let last_id = first_page.last().unwrap()["event_id"].as_i64().unwrap();
    let token_2 = page["next_page_token"].as_str().unwrap();
    let (_, page_2) = get_json(
        &app,
        &format!(
            "/v1/ops/workflows/{}/history?page_size=2&page_token={token_2}",
            enc(&chat)
        ),
        &viewer,
    )
    .await;
    assert_eq!(page_2["events"][0]["event_id"], last_id + 1);
    app.shutdown().await;
}

#[tokio::test]
async fn operators_act_cancel_terminate_and_reset_and_viewers_cannot() {
    let app = spawn_app_with(hs256_options()).await;
    let operator = token("demo", "operator");
    let viewer = token("demo", "viewer");
    let cancelled = order_workflow(&app, "demo", "act-1").await;
    let terminated = order_workflow(&app, "demo", "act-2").await;
    let moved = order_workflow(&app, "demo", "act-3").await;
    app.say("act-chat", "act-chat-1", "hola").await;
    let chat = "demo/conversation/webchat/act-chat";
    describe_until_state(&app, &moved, &viewer).await;
    let post = |path: String, token: String, body: Option<Value>| {
        let app = &app;
        async move { call(app, reqwest::Method::POST, &path, Some(&token), None, body).await }
    };
    let wf = |id: &str, what: &str| format!("/v1/ops/workflows/{}/{what}", enc(id));

    // Viewers read but do not act.
    let response = post(
        wf(&terminated, "terminate"),
        viewer.clone(),
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );

    // A typed action: the order's own ChangeStatus update.
    let response = post(
        wf(&moved, "actions/change_order_status"),
        operator.clone(),
        Some(json!({"to": "CANCELLED", "reason": "customer called"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["result"]["status"], "CANCELLED", "{result}");
    // Refused by the workflow → 409; wrong workflow type, bad body, unknown action → 4xx.
    for (path, body, status, code) in [
        (
            wf(chat, "actions/return_to_bot"),
            None,
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            wf(&cancelled, "actions/approve_payment"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "actions/change_order_status"),
            Some(json!({"to": "FLYING"})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "actions/change_order_status"),
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "actions/return_to_bot"),
            Some(json!({"note": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "actions/launch_rocket"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            wf(&cancelled, "actions/change_order_status"),
            Some(json!({"to": "PAID", "extra": 1})),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            wf("demo/order/nope", "cancel"),
            Some(json!({"reason": "x"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            wf(&cancelled, "terminate"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "terminate"),
            Some(json!({"reason": "  "})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "terminate"),
            Some(json!({"reason": "x".repeat(600)})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            wf(&cancelled, "terminate"),
            Some(json!({"reason": "x".repeat(70 * 1024)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            wf(&cancelled, "cancel"),
            Some(json!(["not", "an", "object"])),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ] {
        let response = post(path.clone(), operator.clone(), body).await;
        assert_eq!(error_code(response, status).await, code, "{path}");
    }

    // Terminate (reason required), then again: 409, the run is closed.
    let response = post(
        wf(&terminated, "terminate"),
        operator.clone(),
        Some(json!({"reason": "test clean-up"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let again = post(
        wf(&terminated, "terminate"),
        operator.clone(),
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(error_code(again, StatusCode::CONFLICT).await, "conflict");
    let (_, detail) = get_json(
        &app,
        &format!("/v1/ops/workflows/{}", enc(&terminated)),
        &viewer,
    )
    .await;
    assert_eq!(detail["status"], "Terminated");

    // Cancel: the order workflow winds down as Canceled.
    let response = post(
        wf(&cancelled, "cancel"),
        operator.clone(),
        Some(json!({"reason": "duplicate order"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, detail) = get_json(
            &app,
            &format!("/v1/ops/workflows/{}", enc(&cancelled)),
            &viewer,
        )
        .await;
        if detail["status"] == "Canceled" {
            break;
        }
        assert!(Instant::now() < deadline, "{detail}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Reset the conversation to its last workflow task: a new run that keeps the history.
    let response = post(
        wf(chat, "reset"),
        operator.clone(),
        Some(json!({"reason": "replay the last step"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reset: Value = response.json().await.unwrap();
    assert_ne!(reset["run_id"], reset["previous_run_id"]);
    let (_, detail) = get_json(&app, &format!("/v1/ops/workflows/{}", enc(chat)), &viewer).await;
    assert_eq!(detail["run_id"], reset["run_id"]);
    assert_eq!(detail["status"], "Running");
    let run = reset["run_id"].as_str().unwrap();
    let (_, history) = get_json(
        &app,
        &format!("/v1/ops/workflows/{}/history?run_id={run}", enc(chat)),
        &viewer,
    )
    .await;
    let failed = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "WorkflowTaskFailed")
        .expect("the reset point")
        .clone();
    assert!(
        failed.to_string().contains("replay the last step"),
        "{failed}"
    );
    // The conversation still answers in the new run.
    let reply = app.say("act-chat", "act-chat-2", "Ana").await;
    assert_eq!(reply["turn"], 2, "{reply}");
    app.shutdown().await;
}

/// A tenant on 360dialog whose provider refuses every send (4xx: dead-lettered at once), with
/// a message from each of `contacts`; waits until each conversation has `per_contact` dead
/// letters. Returns the fake (still refusing) and the tenant id.
pub async fn dead_lettered_tenant(
    app: &TestApp,
    prefix: &str,
    phone: &str,
    contacts: &[&str],
    per_contact: usize,
) -> (crate::fakes::FakeProvider, String) {
    use crate::channels::{dialog_tenant, fake_360dialog, post_360, text_message};
    let fake = fake_360dialog().await;
    let tenant = unique_tenant(prefix);
    let (id, secret) = dialog_tenant(app, &tenant, phone, &fake, json!({})).await;
    fake.down(
        "POST /messages",
        crate::fakes::Answer::json(
            400,
            json!({"error": {"message": "(#131026) Message undeliverable", "code": 131026}}),
        ),
    );
    for contact in contacts {
        for n in 0..per_contact {
            let wamid = format!("wamid.{tenant}-{contact}-{n}");
            let body = text_message(phone, contact, &wamid, "hola");
            assert_eq!(post_360(app, body, Some(&secret)).await.status(), 200);
        }
    }
    let db = &app.database.as_ref().unwrap().db;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let dead = db.channels().dead_letters(&id).await.unwrap();
        let done = contacts.iter().all(|c| {
            let conversation = crate::helpers::whatsapp_conversation_id(&tenant, c);
            dead.iter()
                .filter(|d| d.client_message_id.starts_with(&format!("{conversation}/")))
                .count()
                >= per_contact
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "dead letters so far: {dead:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (fake, tenant)
}

#[tokio::test]
async fn operators_list_and_redrive_dead_letters_once_within_their_tenant() {
    let app = spawn_app_with(hs256_options()).await;
    let (x, y) = ("51933300001", "51933300002");
    let (fake, tenant) = dead_lettered_tenant(&app, "dl", "360301", &[x, y], 2).await;
    let other = unique_tenant("dlother");
    add_tenant(&app, &other).await;
    let (viewer, operator) = (token(&tenant, "viewer"), token(&tenant, "operator"));
    let stranger = token(&other, "operator");
    let conv_x = crate::helpers::whatsapp_conversation_id(&tenant, x);
    let conv_y = crate::helpers::whatsapp_conversation_id(&tenant, y);
    let refused = fake.seen("POST /messages").len();
    assert_eq!(refused, 4, "a 4xx is not retried");

    // Viewers list; the filter keeps one conversation's; other tenants see none.
    let (status, all) = get_json(&app, "/v1/ops/dead-letters", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["dead_letters"].as_array().unwrap().len(), 4, "{all}");
    let (_, only_y) = get_json(
        &app,
        &format!("/v1/ops/dead-letters?conversation_id={}", enc(&conv_y)),
        &viewer,
    )
    .await;
    let only_y = only_y["dead_letters"].as_array().unwrap().clone();
    assert_eq!(only_y.len(), 2, "{only_y:?}");
    assert!(
        only_y
            .iter()
            .all(|d| d["conversation_id"] == conv_y.as_str())
    );
    assert!(only_y[0]["last_error"].as_str().unwrap().contains("131026"));
    let (_, theirs) = get_json(&app, "/v1/ops/dead-letters", &stranger).await;
    assert_eq!(theirs["dead_letters"], json!([]));
    let (status, _) = get_json(&app, "/v1/ops/dead-letters?tenant=x", &viewer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let post = |path: String, token: Option<String>, body: Option<Value>| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::POST,
                &path,
                token.as_deref(),
                None,
                body,
            )
            .await
        }
    };
    let one = only_y[1]["client_message_id"].as_str().unwrap().to_owned();
    let redrive_one = format!("/v1/ops/dead-letters/{}/redrive", enc(&one));
    let redrive_x = format!(
        "/v1/ops/workflows/{}/actions/redrive_dead_letters",
        enc(&conv_x)
    );
    // Unauthenticated, a viewer, another tenant, unknown ids, bad bodies: refused, no send.
    for (path, token, body, status) in [
        (redrive_one.clone(), None, None, StatusCode::UNAUTHORIZED),
        (
            redrive_one.clone(),
            Some(viewer.clone()),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            redrive_x.clone(),
            Some(viewer.clone()),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            redrive_one.clone(),
            Some(stranger.clone()),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            redrive_x.clone(),
            Some(stranger.clone()),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/ops/dead-letters/nope/redrive".into(),
            Some(operator.clone()),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/v1/ops/dead-letters/{}/redrive", "x".repeat(600)),
            Some(operator.clone()),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            redrive_one.clone(),
            Some(operator.clone()),
            Some(json!({"force": true})),
            StatusCode::BAD_REQUEST,
        ),
        (
            redrive_x.clone(),
            Some(operator.clone()),
            Some(json!({"note": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(
                "/v1/ops/workflows/{}/actions/redrive_dead_letters",
                enc(&format!("{tenant}/conversation/whatsapp/nobody"))
            ),
            Some(operator.clone()),
            None,
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = post(path.clone(), token, body).await;
        assert_eq!(response.status(), status, "{path}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.seen("POST /messages").len(), refused);

    // The provider is back: one message, then all of a conversation; twice sends once.
    fake.up("POST /messages");
    let response = post(redrive_one.clone(), Some(operator.clone()), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let started: Value = response.json().await.unwrap();
    assert_eq!(started["client_message_id"], one.as_str());
    let again = post(redrive_one.clone(), Some(operator.clone()), None).await;
    assert_eq!(error_code(again, StatusCode::NOT_FOUND).await, "not_found");

    let (_, detail) = get_json(
        &app,
        &format!("/v1/ops/workflows/{}", enc(&conv_x)),
        &viewer,
    )
    .await;
    assert_eq!(
        detail["actions"],
        json!(["return_to_bot", "redrive_dead_letters"]),
        "{detail}"
    );
    let response = post(redrive_x.clone(), Some(operator.clone()), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    let redriven = result["result"]["redriven"].as_array().unwrap();
    assert_eq!(redriven.len(), 2, "{result}");
    assert!(redriven.iter().all(|r| {
        r["client_message_id"]
            .as_str()
            .unwrap()
            .starts_with(&conv_x)
    }));
    let response = post(redrive_x.clone(), Some(operator.clone()), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["result"]["redriven"], json!([]), "{result}");

    // Three sends, each once; the rest of conversation y is still a dead letter.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.seen("POST /messages").len() < refused + 3 {
        assert!(Instant::now() < deadline, "re-driven sends did not go out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.seen("POST /messages").len(), refused + 3);
    let (_, left) = get_json(&app, "/v1/ops/dead-letters", &viewer).await;
    let left = left["dead_letters"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["client_message_id"], only_y[0]["client_message_id"]);
    app.shutdown().await;
}
