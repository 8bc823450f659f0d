//! SSRF from the worker: a tenant lists an internal host in `allowed_http_hosts` (by IP literal,
//! by `localhost`, by an IPv4-mapped IPv6 literal, by `0.0.0.0`) and publishes a flow whose
//! `http_request` calls a loopback service and puts the answer in the bot's reply; an anonymous
//! webchat user then reads that service's body.
//!
//! The names check alone allowed it. The outbound guard refuses internal addresses whatever the
//! tenant lists: the flow takes its failure edge, the service sees no connection at all, and the
//! error the user reads names the host only, never the path or query. The second test runs the
//! same flows with the harness's loopback allowance (`worker.outbound.allow_cidrs`) to show the
//! listener and the flows are able to leak, so the first test's silence means something.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zengine_domain::TenantId;

use crate::flows::{chat, graph, publish, session};
use crate::helpers::{AppOptions, TestApp, reply_texts, spawn_app, spawn_app_with};

/// What the internal service answers: must never reach a webchat user.
const SECRET: &str = "internal-secret-7f3a";
/// A query parameter of the flow's URL: must never show in an error message.
const QUERY_SECRET: &str = "q-secret-91bd";

/// A loopback HTTP service that counts every TCP connection it accepts and answers [`SECRET`].
async fn internal_service() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{SECRET}",
                    SECRET.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, connections)
}

/// The URLs an attacker would try for the service on `port`.
fn internal_urls(port: u16) -> Vec<String> {
    ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"]
        .iter()
        .map(|host| format!("http://{host}:{port}/admin?token={QUERY_SECRET}"))
        .collect()
}

/// Lets the demo tenant call every internal host name the attack uses, and publishes one flow
/// per URL that replies with the response body (`ok`) or the error (`ko`).
async fn publish_leaky_flows(app: &TestApp, urls: &[String]) -> Vec<String> {
    let db = &app.database.as_ref().unwrap().db;
    let hosts = [
        "127.0.0.1",
        "localhost",
        "[::ffff:7f00:1]",
        "[::ffff:127.0.0.1]",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ];
    db.tenants()
        .set_allowed_http_hosts(&TenantId::parse("demo").unwrap(), &hosts.map(str::to_owned))
        .await
        .unwrap();
    let mut names = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let name = format!("leak-{i}");
        publish(
            app,
            &name,
            graph(json!([
                {"id": "q", "type": "question", "text": "¿Qué buscas?", "save_as": "x", "next": "call"},
                {"id": "call", "type": "command", "command": "http_request", "save_as": "r",
                 "params": {"method": "GET", "url": url},
                 "next": "ok", "on_failure": "ko"},
                {"id": "ok", "type": "end", "text": "Respuesta: {{r.body}}"},
                {"id": "ko", "type": "end", "text": "Falló: {{last_error}}"}
            ])),
        )
        .await;
        names.push(name);
    }
    names
}

/// Runs `flow` as an anonymous webchat user and returns the texts of the answer's replies.
async fn talk(app: &TestApp, flow: &str) -> Vec<String> {
    let s = session();
    chat(app, &s, flow, "hola").await;
    reply_texts(&chat(app, &s, flow, "lo que sea").await)
}

#[tokio::test]
async fn http_request_cannot_reach_internal_addresses_whatever_the_tenant_allows() {
    let app = spawn_app_with(AppOptions {
        outbound: Default::default(),
        ..AppOptions::default()
    })
    .await;
    let (port, connections) = internal_service().await;
    let urls = internal_urls(port);
    let flows = publish_leaky_flows(&app, &urls).await;
    for (flow, url) in flows.iter().zip(&urls) {
        let texts = talk(&app, flow).await;
        let all = texts.join("\n");
        assert!(!all.contains(SECRET), "{url}: the secret leaked: {texts:?}");
        assert_eq!(texts.len(), 1, "{url}: {texts:?}");
        assert!(
            texts[0].starts_with("Falló: "),
            "{url}: the flow did not take its failure edge: {texts:?}"
        );
        assert!(
            texts[0].contains("refused") && !texts[0].contains(QUERY_SECRET),
            "{url}: the error should name the refusal and the host only: {texts:?}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the internal service was connected to"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_same_flows_reach_loopback_when_the_platform_opens_it() {
    // spawn_app() opens 127.0.0.0/8 (and ::1) like an on-premise `worker.outbound.allow_cidrs`.
    let app = spawn_app().await;
    let (port, connections) = internal_service().await;
    let urls = internal_urls(port);
    let flows = publish_leaky_flows(&app, &urls).await;
    // 127.0.0.1, localhost and ::ffff:127.0.0.1 are loopback; 0.0.0.0 ("this host") is refused
    // even then: no allowance opens it by accident.
    for (flow, url) in flows.iter().zip(&urls).take(3) {
        let texts = talk(&app, flow).await;
        assert_eq!(
            texts,
            [format!("Respuesta: {SECRET}")],
            "{url}: the flow should reach the service"
        );
    }
    let texts = talk(&app, &flows[3]).await;
    assert!(texts[0].starts_with("Falló: "), "0.0.0.0: {texts:?}");
    assert!(connections.load(Ordering::SeqCst) >= 3);
    app.shutdown().await;
}
