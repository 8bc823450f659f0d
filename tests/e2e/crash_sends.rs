//! The unknown-outcome window of a channel send, measured for the AWS strategies: a worker is
//! SIGKILLed after the provider (moto, behind a proxy that withholds its answer) accepted a
//! message and before the activity heard back. SNS and SES have no idempotency key and send no
//! status webhook to ZEngine, so the retry on another worker sends again: moto counts two. This
//! is the "at least once" row of `docs/channels.md` ("What is guaranteed, per strategy").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use temporalio_client::{WorkflowGetResultOptions, WorkflowIdReusePolicy, WorkflowStartOptions};
use zengine_activities::channels::DeliverReply;
use zengine_domain::{Reply, TenantId};
use zengine_workers::TemporalSettings;
use zengine_workers::testing::{moto_server, shared_dev_server};
use zengine_workflows::channels::{RedriveInput, RedriveWorkflow};
use zengine_workflows::names::{queues, task_queue};

use super::Cluster;

/// An HTTP proxy to `upstream` (moto) that forwards every request and hands back moto's answer,
/// except for the first request whose body contains a watched marker: that one reaches moto (so
/// the message is accepted) and its answer is withheld for five minutes, as when the worker dies
/// after the provider took the message.
async fn withholding_proxy(upstream: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let watched: Arc<Mutex<Vec<String>>> = Arc::default();
    let markers = watched.clone();
    let held: Arc<Mutex<Vec<String>>> = Arc::default();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (markers, held, http) = (markers.clone(), held.clone(), http.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let text = String::from_utf8_lossy(&body).into_owned();
            let mut forward = http.request(
                parts.method.clone(),
                format!(
                    "{upstream}{}",
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                ),
            );
            for (name, value) in &parts.headers {
                if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.body(body).send().await.unwrap();
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let bytes = answer.bytes().await.unwrap();
            let hold = {
                let markers = markers.lock().unwrap();
                let mut held = held.lock().unwrap();
                match markers.iter().find(|m| text.contains(m.as_str())) {
                    Some(m) if !held.contains(m) => {
                        held.push(m.clone());
                        true
                    }
                    _ => false,
                }
            };
            if hold {
                tokio::time::sleep(Duration::from_secs(300)).await;
            }
            let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, content_type);
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), watched)
}

async fn moto_data() -> Value {
    reqwest::get(format!("{}/moto-api/data.json", moto_server()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How many SMS moto's SNS accepted for `number`.
async fn sms_count(number: &str) -> usize {
    let data = moto_data().await;
    data["sns"]["SMS"].as_array().map_or(0, |a| {
        a.iter().filter(|m| m["phone_number"] == number).count()
    })
}

/// How many e-mails moto's SES accepted for `to`.
async fn email_count(to: &str) -> usize {
    let data = moto_data().await;
    data["ses"]["TemplateMessage"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|m| {
                m["destinations"]["ToAddresses"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == to))
            })
            .count()
    })
}

/// Where the crash runs: the cluster, its task-queue prefix, a client and the domain database.
struct Crash<'a> {
    cluster: &'a Cluster,
    prefix: String,
    client: temporalio_client::Client,
    db: zengine_storage::Database,
}

impl<'a> Crash<'a> {
    async fn new(cluster: &'a Cluster) -> Self {
        let prefix = cluster
            .env
            .iter()
            .find(|(k, _)| k == "ZENGINE_TEMPORAL__TASK_QUEUE_PREFIX")
            .map(|(_, v)| v.clone())
            .unwrap();
        let client = zengine_workers::connect(
            &TemporalSettings {
                address: shared_dev_server().to_owned(),
                ..TemporalSettings::default()
            },
            "e2e-crash-sends",
        )
        .await
        .unwrap();
        let db = zengine_storage::Database::connect(&cluster.db_url, 2)
            .await
            .unwrap();
        Self {
            cluster,
            prefix,
            client,
            db,
        }
    }

    /// Delivers `delivery` through a worker on `channels`, SIGKILLs it once `accepted` says the
    /// provider has the message, and waits for a second worker's retry to finish it. The
    /// delivery ends delivered and SENT after at least 2 attempts; what the provider holds is
    /// for the caller to count.
    async fn kill_after_accept<F: std::future::Future<Output = bool>>(
        &self,
        delivery: DeliverReply,
        accepted: impl Fn() -> F,
    ) {
        let strategy = delivery.strategy.clone().unwrap();
        let worker = self
            .cluster
            .worker_on(&format!("worker-{strategy}-1.log"), "channels", &[]);
        let (tenant, client_message_id) = (
            delivery.tenant_id.clone(),
            delivery.client_message_id.clone(),
        );
        let workflow_id = format!("deliver-crash-{client_message_id}");
        self.client
            .start_workflow(
                RedriveWorkflow::run,
                RedriveInput { delivery },
                WorkflowStartOptions::new(
                    task_queue(&self.prefix, queues::CHANNELS),
                    workflow_id.clone(),
                )
                .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
                .build(),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !accepted().await {
            assert!(
                Instant::now() < deadline,
                "{strategy}: the provider never got the message"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The provider took it; the worker dies before the answer.
        worker.signal(Signal::SIGKILL);
        let _ = worker.wait(Duration::from_secs(10));
        let _retry = self
            .cluster
            .worker_on(&format!("worker-{strategy}-2.log"), "channels", &[]);
        // The retry runs once the dead attempt's heartbeat timeout (10 s) expires.
        let outcome = tokio::time::timeout(
            Duration::from_secs(120),
            self.client
                .get_workflow_handle::<RedriveWorkflow>(&workflow_id)
                .get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{strategy}: the delivery never ended"))
        .unwrap();
        assert!(outcome.delivered, "{strategy}: {outcome:?}");
        let record = self
            .db
            .channels()
            .outbound(&tenant, &client_message_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, "SENT", "{strategy}: {record:?}");
        assert!(record.attempts >= 2, "{strategy}: {record:?}");
    }
}

#[tokio::test]
async fn a_worker_killed_after_sns_or_ses_accepted_a_message_sends_it_again() {
    let cluster = Cluster::new("crashaws", &[]);
    let crash = Crash::new(&cluster).await;
    let (proxy, watched) = withholding_proxy(moto_server()).await;
    let creds = cluster.dir.path().join("aws-credential");
    std::fs::write(&creds, "testing\n").unwrap();
    let creds = format!("file:{}", creds.display());
    let aws = json!({"region": "us-east-1", "endpoint_url": proxy, "access_key_id": creds,
                     "secret_access_key": creds, "timeout_ms": 120000});

    // moto's SES needs a verified sender and the tenant's template.
    let ses = zengine_channels::aws::ses::EmailSender::from_settings(
        &zengine_channels::aws::AwsSettings {
            region: "us-east-1".into(),
            endpoint_url: moto_server().into(),
            access_key_id: creds.clone(),
            secret_access_key: creds.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let from = format!("bot-{suffix}@crash.pe");
    let template = format!("crash-text-{suffix}");
    ses.client()
        .verify_email_identity()
        .email_address(&from)
        .send()
        .await
        .unwrap();
    ses.client()
        .create_template()
        .template(
            aws_sdk_ses::types::Template::builder()
                .template_name(&template)
                .subject_part("Aviso")
                .text_part("{{text}}")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tenant = TenantId::parse(format!("crash-{suffix}")).unwrap();
    crash
        .db
        .tenants()
        .upsert(&tenant, "Crash", "main")
        .await
        .unwrap();
    for (strategy, settings) in [
        (
            "sns-sms",
            json!({"aws": aws, "sender_id": "ZEngine", "primary": true}),
        ),
        (
            "ses-email",
            json!({"aws": aws, "from": from, "text_template": template, "primary": true}),
        ),
    ] {
        add_account(
            &crash.db,
            &tenant,
            strategy,
            &format!("{strategy}-{suffix}"),
            settings,
        )
        .await;
    }

    let number = format!(
        "+5198{:07}",
        u32::from_str_radix(&suffix[..6], 16).unwrap() % 10_000_000
    );
    let address = format!("c-{suffix}@example.pe");
    for (channel, strategy, to) in [
        ("sms", "sns-sms", number.as_str()),
        ("email", "ses-email", address.as_str()),
    ] {
        // (Alphanumeric: SNS and SES bodies are form-encoded.)
        let marker = format!("zq{suffix}{channel}");
        watched.lock().unwrap().push(marker.clone());
        let count = || async {
            match strategy {
                "sns-sms" => sms_count(to).await,
                _ => email_count(to).await,
            }
        };
        let delivery = DeliverReply {
            tenant_id: tenant.clone(),
            channel: channel.into(),
            recipient: to.into(),
            client_message_id: format!("crash-{suffix}/{strategy}/out-1"),
            reply: Reply::text(format!("Tu pedido va en camino {marker}")),
            strategy: Some(strategy.into()),
        };
        crash
            .kill_after_accept(delivery, || async { count().await == 1 })
            .await;
        // No idempotency key, no status webhook: the provider accepted it twice.
        assert_eq!(
            count().await,
            2,
            "{strategy}: at least once, and here twice"
        );
    }
}

async fn add_account(
    db: &zengine_storage::Database,
    tenant: &TenantId,
    strategy: &str,
    key: &str,
    settings: Value,
) {
    db.channels()
        .upsert_account(&zengine_storage::ChannelAccount {
            strategy: strategy.into(),
            account_key: key.into(),
            tenant_id: tenant.clone(),
            settings,
        })
        .await
        .unwrap();
}

/// What the Connect and Five9 fake saw: every send request, and the messages it kept.
#[derive(Default)]
struct ContactCentre {
    /// Connect `SendMessage` requests: (ClientToken, Content).
    connect_requests: Vec<(String, String)>,
    /// Connect messages kept, by ClientToken (Connect deduplicates on it).
    connect_messages: std::collections::BTreeMap<String, String>,
    /// Five9 message posts: (conversation, text); Five9 keeps each one.
    five9_messages: Vec<(String, String)>,
}

/// A loopback fake of Amazon Connect's participant service and Five9's conversation API (no
/// local peer exists for either). Connect deduplicates `SendMessage` by `ClientToken`, as the
/// service documents; Five9 has no idempotency key. The first send of each withholds its answer
/// for five minutes, as when the worker dies after the provider took the message.
async fn contact_centre() -> (String, Arc<Mutex<ContactCentre>>) {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state: Arc<Mutex<ContactCentre>> = Arc::default();
    let (connect, five9) = (state.clone(), state.clone());
    let host = url.clone();
    let app = axum::Router::new()
        .route(
            "/participant/connection",
            post(|| async {
                axum::Json(json!({"ConnectionCredentials": {
                    "ConnectionToken": "conn-1", "Expiry": "2099-01-01T00:00:00.000Z"}}))
            }),
        )
        .route(
            "/participant/message",
            post(move |axum::Json(body): axum::Json<Value>| {
                let state = connect.clone();
                async move {
                    let token = body["ClientToken"].as_str().unwrap_or_default().to_owned();
                    let content = body["Content"].as_str().unwrap_or_default().to_owned();
                    let (id, first) = {
                        let mut s = state.lock().unwrap();
                        s.connect_requests.push((token.clone(), content));
                        let first = s.connect_requests.len() == 1;
                        let n = s.connect_messages.len();
                        let id = s
                            .connect_messages
                            .entry(token)
                            .or_insert_with(|| format!("cmsg-{n}"))
                            .clone();
                        (id, first)
                    };
                    if first {
                        tokio::time::sleep(Duration::from_secs(300)).await;
                    }
                    axum::Json(json!({"Id": id, "AbsoluteTime": "2026-12-07T00:00:00.000Z"}))
                }
            }),
        )
        .route(
            "/appsvcs/rs/svc/auth/anon",
            post(move || {
                let host = host.clone();
                async move {
                    axum::Json(json!({"tokenId": "tok-1", "orgId": "org-1",
                        "context": {"farmId": "farm-1"},
                        "metadata": {"dataCenters": [{"apiUrls": [{"host": host}]}]}}))
                }
            }),
        )
        .route(
            "/appsvcs/rs/svc/conversations/{id}/messages",
            post(
                move |axum::extract::Path(id): axum::extract::Path<String>,
                      axum::Json(body): axum::Json<Value>| {
                    let state = five9.clone();
                    async move {
                        let text = body["message"].as_str().unwrap_or_default().to_owned();
                        let first = {
                            let mut s = state.lock().unwrap();
                            s.five9_messages.push((id, text));
                            s.five9_messages.len() == 1
                        };
                        if first {
                            tokio::time::sleep(Duration::from_secs(300)).await;
                        }
                        axum::Json(json!({}))
                    }
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// The same window for the contact-centre strategies, against the fake above: Connect's retry
/// carries the same `ClientToken` (the client message id), so Connect keeps one message although
/// it was asked twice — **once**; Five9 has no key, so it keeps two — **at least once**.
#[tokio::test]
async fn a_worker_killed_after_connect_or_five9_accepted_a_message_resends_it_with_what_the_provider_allows()
 {
    let cluster = Cluster::new("crashcc", &[]);
    let crash = Crash::new(&cluster).await;
    let (fake, seen) = contact_centre().await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let tenant = TenantId::parse(format!("cc-{suffix}")).unwrap();
    let creds = cluster.dir.path().join("five9-credential");
    std::fs::write(&creds, "hook\n").unwrap();
    let creds = format!("file:{}", creds.display());
    crash
        .db
        .tenants()
        .upsert(&tenant, "Contact centre", "main")
        .await
        .unwrap();
    let prefix = format!("{fake}/sns/");
    add_account(
        &crash.db,
        &tenant,
        "amazon-connect-chat",
        &format!("arn:aws:sns:us-east-1:123456789012:cc-{suffix}"),
        json!({"participant_endpoint": fake, "cert_url_prefix": prefix,
               "subscribe_url_prefix": prefix}),
    )
    .await;
    add_account(
        &crash.db,
        &tenant,
        "five9-digital",
        &format!("five9-{suffix}"),
        json!({"tenant_name": "Crash", "login_host": fake, "webhook_username": creds,
               "webhook_password": creds, "allowed_ips": ["127.0.0.1/32"]}),
    )
    .await;
    crash
        .db
        .channels()
        .register_connect_participant(&tenant, "contact-1", "ptok-1")
        .await
        .unwrap();

    for (channel, strategy, to) in [
        ("amazon-connect", "amazon-connect-chat", "contact-1"),
        ("five9", "five9-digital", "f9-conv-1"),
    ] {
        let requests = || {
            let s = seen.lock().unwrap();
            match strategy {
                "amazon-connect-chat" => s.connect_requests.len(),
                _ => s.five9_messages.len(),
            }
        };
        let delivery = DeliverReply {
            tenant_id: tenant.clone(),
            channel: channel.into(),
            recipient: to.into(),
            client_message_id: format!("cc-{suffix}/{strategy}/out-1"),
            reply: Reply::text(format!("Un agente le atiende ({strategy})")),
            strategy: Some(strategy.into()),
        };
        crash
            .kill_after_accept(delivery, || async { requests() == 1 })
            .await;
        let s = seen.lock().unwrap();
        match strategy {
            "amazon-connect-chat" => {
                // Asked twice, with one ClientToken: Connect keeps one message.
                assert_eq!(s.connect_requests.len(), 2, "{:?}", s.connect_requests);
                assert_eq!(s.connect_requests[0].0, s.connect_requests[1].0);
                assert_eq!(s.connect_messages.len(), 1);
            }
            _ => assert_eq!(s.five9_messages.len(), 2, "{:?}", s.five9_messages),
        }
    }
}
