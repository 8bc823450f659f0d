//! The S3 attachment store ([`crate::files::FileStore`] over S3 or an S3-compatible service).

use anyhow::Context;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::files::{FileKey, FileStore, S3StoreSettings};

/// Attachments in an S3 bucket, under a prefix. The client is built on first use (building it
/// resolves the credential references).
#[derive(Debug)]
pub struct S3FileStore {
    settings: S3StoreSettings,
    client: OnceCell<aws_sdk_s3::Client>,
}

impl S3FileStore {
    pub fn new(settings: S3StoreSettings) -> Self {
        Self {
            settings,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> anyhow::Result<&aws_sdk_s3::Client> {
        self.client
            .get_or_try_init(|| async {
                let config = self.settings.aws.sdk_config().await?;
                let s3 = aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(self.settings.force_path_style)
                    .build();
                Ok::<_, anyhow::Error>(aws_sdk_s3::Client::from_conf(s3))
            })
            .await
            .context("Failed to configure the S3 client")
    }

    fn object_key(&self, key: &FileKey) -> String {
        format!("{}{}", self.settings.prefix, key.as_str())
    }
}

impl FileStore for S3FileStore {
    fn put<'a>(
        &'a self,
        key: &'a FileKey,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .put_object()
                .bucket(&self.settings.bucket)
                .key(self.object_key(key))
                .content_type(content_type)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("S3 PutObject {key}: {}", DisplayErrorContext(&e)))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a FileKey) -> BoxFuture<'a, anyhow::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let result = self
                .client()
                .await?
                .get_object()
                .bucket(&self.settings.bucket)
                .key(self.object_key(key))
                .send()
                .await;
            match result {
                Ok(output) => {
                    let bytes = output
                        .body
                        .collect()
                        .await
                        .with_context(|| format!("S3 GetObject {key}: reading the body"))?;
                    Ok(Some(bytes.into_bytes().to_vec()))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(anyhow::anyhow!(
                    "S3 GetObject {key}: {}",
                    DisplayErrorContext(&e)
                )),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a FileKey) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .delete_object()
                .bucket(&self.settings.bucket)
                .key(self.object_key(key))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("S3 DeleteObject {key}: {}", DisplayErrorContext(&e))
                })?;
            Ok(())
        })
    }

    fn backend(&self) -> &'static str {
        "s3"
    }
}
