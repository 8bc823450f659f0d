//! Fault injection at the process level: the Temporal server restarted under running
//! workflows, the domain database cut off behind a TCP proxy.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use zengine_workers::devserver::{DevServer, DevServerSettings, free_port};
use zengine_workers::testing::temporal_binary;

use super::{Cluster, first_text, say};

/// A webchat message whose answer may be an error (the raw status and body).
async fn try_say(base: &str, session: &str, key: &str, text: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", key)
        .json(&json!({"session_id": session, "text": text}))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!(e.to_string())),
    }
}

async fn readyz(base: &str) -> u16 {
    match reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Polls `/readyz` until it answers `want`.
async fn wait_readyz(base: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = readyz(base).await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/readyz still answers {got}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Temporal dev server of this test only, on a SQLite file (so it can be restarted).
fn temporal_on(db: &Path, port: u16, log: &Path) -> DevServer {
    let settings = DevServerSettings {
        binary: temporal_binary(),
        port,
        ui_port: None,
        db_file: Some(db.to_owned()),
        log_file: Some(log.to_owned()),
        ..DevServerSettings::default()
    };
    let server = DevServer::start(&settings).unwrap();
    server.wait_ready(Duration::from_secs(60)).unwrap();
    server
}

#[tokio::test]
async fn workflows_resume_and_complete_after_the_temporal_server_restarts() {
    let started = Instant::now();
    let temporal_dir = tempfile::tempdir().unwrap();
    let db = temporal_dir.path().join("temporal.db");
    let log = temporal_dir.path().join("temporal.log");
    let port = free_port();
    let temporal = temporal_on(&db, port, &log);
    let address = format!("127.0.0.1:{port}");
    let cluster = Cluster::new(
        "trestart",
        &[
            ("TEMPORAL_ADDRESS", &address),
            ("ZENGINE_API__WEBCHAT_TIMEOUT_MS", "10000"),
            (
                "ZENGINE_WORKER__STICKY_SCHEDULE_TO_START_TIMEOUT_MS",
                "1000",
            ),
        ],
    );
    let base = cluster.base.clone();
    let api = cluster.api();
    let worker = cluster.worker("worker.log");
    cluster.wait_api().await;

    // Five conversations mid-flow: each has answered its first message and waits (with its
    // idle timer running) for the next.
    const N: usize = 5;
    for i in 0..N {
        let reply = say(&base, &format!("tr-{i}"), &format!("tr-{i}-1"), "hola").await;
        assert!(first_text(&reply).contains("¿Cómo te llamas?"), "{reply}");
    }
    // Two of them get their second message while Temporal goes away.
    let in_flight: Vec<_> = (0..2)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                try_say(&base, &format!("tr-{i}"), &format!("tr-{i}-2"), "Ana").await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = Instant::now();
    temporal.stop(Duration::from_secs(20)).unwrap();

    // Down: the service says so instead of hanging or crashing.
    wait_readyz(&base, 503, Duration::from_secs(10)).await;
    let (status, body) = try_say(&base, "tr-2", "tr-2-2", "Ana").await;
    assert!(
        [503, 504].contains(&status),
        "a message while Temporal is down: {status} {body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let down_for = stopped_at.elapsed();

    // Same SQLite file, same port.
    let temporal = temporal_on(&db, port, &log);
    let recovered = wait_readyz(&base, 200, Duration::from_secs(60)).await;

    // Every conversation continues where it was; a message whose answer was lost in the outage
    // is sent again with its idempotency key and counts once.
    for (i, pending) in in_flight.into_iter().enumerate() {
        let (status, body) = pending.await.unwrap();
        eprintln!("in flight during the stop: tr-{i}: {status} {body}");
    }
    for i in 0..N {
        let session = format!("tr-{i}");
        let second = retry_say(&base, &session, &format!("tr-{i}-2"), "Ana").await;
        assert_eq!(second["turn"], 2, "{session}: {second}");
        assert_eq!(
            first_text(&second),
            "Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?",
            "{session}"
        );
        let third = retry_say(&base, &session, &format!("tr-{i}-3"), "un pedido").await;
        assert_eq!(third["turn"], 3, "{session}: {third}");
        let texts: Vec<&str> = third["replies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["text"].as_str())
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains("Anoté tu consulta: \"un pedido\"")),
            "{session}: {third}"
        );
        assert!(texts.contains(&"¡Hasta pronto!"), "{session}: {third}");
    }

    worker.signal(Signal::SIGTERM);
    assert!(worker.wait(Duration::from_secs(30)).success());
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());
    temporal.stop(Duration::from_secs(20)).unwrap();
    eprintln!(
        "Temporal down for {down_for:?}, ready again {recovered:?} after its restart; test took {:?}",
        started.elapsed()
    );
}

/// [`say`], retried while the service is still reconnecting (5xx), with the same key.
async fn retry_say(base: &str, session: &str, key: &str, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = try_say(base, session, key, text).await;
        if status == 200 {
            return body;
        }
        assert!(
            (status == 0 || status >= 500) && Instant::now() < deadline,
            "{session}/{key}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
