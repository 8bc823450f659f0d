//! The AWS base against moto: SMS through SNS (accepted, refused for good, unreachable) and the
//! S3 attachment store, directly and behind `POST /v1/assistances/phone-consultations`.

use reqwest::StatusCode;
use zengine_channels::aws::AwsSettings;
use zengine_channels::aws::ErrorKind;
use zengine_channels::aws::sns::{Sms, SmsSender, SmsType};
use zengine_channels::files::{FileKey, FileStoreSettings, S3StoreSettings};
use zengine_workers::testing::moto_server;

use crate::assistance::{consultation_round_trip, fresh_number, sms_to};
use crate::helpers::{ADMIN_TOKEN, AppOptions, spawn_app_with};

fn moto_settings(endpoint: &str) -> AwsSettings {
    let dir = std::env::temp_dir().join(format!("zengine-aws-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("credential");
    std::fs::write(&creds, "testing").unwrap();
    let reference = format!("file:{}", creds.display());
    AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: endpoint.into(),
        access_key_id: reference.clone(),
        secret_access_key: reference,
        ..AwsSettings::default()
    }
}

fn sms<'a>(to: &'a str, text: &'a str) -> Sms<'a> {
    Sms {
        to,
        text,
        sms_type: SmsType::Transactional,
        sender_id: Some("ZEngine"),
        origination_number: None,
    }
}

#[tokio::test]
async fn sns_accepts_an_sms_and_returns_its_message_id() {
    let sender = SmsSender::from_settings(&moto_settings(moto_server()))
        .await
        .unwrap();
    let to = fresh_number();
    let id = sender
        .send(&sms(&to, "Su proveedor está en camino"))
        .await
        .unwrap();
    assert!(!id.is_empty());
    assert_eq!(
        sms_to(&to).await,
        vec!["Su proveedor está en camino".to_owned()]
    );
}

#[tokio::test]
async fn sns_refusals_are_permanent_and_unreachable_sns_is_retryable() {
    let sender = SmsSender::from_settings(&moto_settings(moto_server()))
        .await
        .unwrap();
    let to = fresh_number();
    // SNS's own limit: 1600 bytes.
    let long = "x".repeat(1700);
    let e = sender.send(&sms(&to, &long)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert_eq!(e.code.as_deref(), Some("InvalidParameter"));
    assert!(
        !e.to_string().contains(&long),
        "the text must not leak into errors"
    );
    assert!(sms_to(&to).await.is_empty());

    let closed = format!(
        "http://127.0.0.1:{}",
        zengine_workers::devserver::free_port()
    );
    let down = SmsSender::from_settings(&moto_settings(&closed))
        .await
        .unwrap();
    let e = down.send(&sms(&to, "hola")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.code.as_deref(), Some("DispatchFailure"));
}

async fn bucket(settings: &AwsSettings) -> String {
    let name = format!(
        "zengine-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let config = settings.sdk_config().await.unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&name).send().await.unwrap();
    name
}

fn s3_settings(bucket: String, aws: AwsSettings) -> FileStoreSettings {
    FileStoreSettings {
        backend: "s3".into(),
        s3: S3StoreSettings {
            bucket,
            prefix: "attachments/".into(),
            force_path_style: true,
            aws,
        },
        ..FileStoreSettings::default()
    }
}

#[tokio::test]
async fn the_s3_store_round_trips_replaces_and_deletes_in_moto() {
    let aws = moto_settings(moto_server());
    let store = s3_settings(bucket(&aws).await, aws).build().unwrap();
    assert_eq!(store.backend(), "s3");
    let key = FileKey::parse("demo/phone-consultations/phc_1/abc").unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.put(&key, "application/pdf", b"%PDF-1").await.unwrap();
    store.put(&key, "application/pdf", b"%PDF-2").await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"%PDF-2"[..])
    );
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    // A bucket that does not exist is an error, not "no file".
    let missing = s3_settings(
        "zengine-no-such-bucket".into(),
        moto_settings(moto_server()),
    )
    .build()
    .unwrap();
    assert!(missing.get(&key).await.is_err());
}

#[tokio::test]
async fn phone_consultation_attachments_go_to_s3_when_configured() {
    let aws = moto_settings(moto_server());
    let settings = s3_settings(bucket(&aws).await, aws);
    let mut options = AppOptions::default();
    options.api.attachments = settings.clone();
    let app = spawn_app_with(options).await;
    let (status, draft) = {
        let response = app
            .http
            .post(format!("{}/v1/assistances/events/draft", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-tenant-id", "demo")
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(status, StatusCode::CREATED);
    let consultation = consultation_round_trip(&app, draft["event_id"].as_str().unwrap()).await;
    // The file is in the bucket, under the prefix, and not in the local folder.
    let key = FileKey::parse(consultation["attachment"]["key"].as_str().unwrap()).unwrap();
    let store = settings.build().unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(crate::assistance::PDF)
    );
    assert!(!app.files_dir.path().join(key.as_str()).exists());
    app.shutdown().await;
}
