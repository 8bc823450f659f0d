//! The attachment file store: phone-consultation recordings and documents.
//!
//! [`FileStore`] has two implementations: [`LocalFileStore`] (a folder under the data
//! directory, the embedded default) and [`crate::aws::s3::S3FileStore`] (S3 or any
//! S3-compatible store, for production). Keys are [`FileKey`]s: relative, `/`-separated
//! segments of `A-Za-z0-9._-` with no `.` or `..` segment, so no key can leave the store's
//! folder or prefix.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::aws::AwsSettings;
use crate::aws::s3::S3FileStore;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file key `{0}` is not 1–8 `/`-separated segments of A-Za-z0-9._- (no `.` or `..`)")]
pub struct BadFileKey(pub String);

/// A key in a file store (see the module docs for what is allowed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileKey(String);

impl FileKey {
    pub fn parse(key: impl Into<String>) -> Result<Self, BadFileKey> {
        let key = key.into();
        let segments: Vec<&str> = key.split('/').collect();
        let ok = key.len() <= 512
            && (1..=8).contains(&segments.len())
            && segments.iter().all(|s| {
                !s.is_empty()
                    && *s != "."
                    && *s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(Self(key))
        } else {
            Err(BadFileKey(key))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for FileKey {
    type Error = BadFileKey;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<FileKey> for String {
    fn from(k: FileKey) -> String {
        k.0
    }
}

/// Where attachments are kept. Object safe, so the API holds an `Arc<dyn FileStore>`.
pub trait FileStore: Send + Sync + fmt::Debug {
    /// Stores `bytes` under `key`, replacing what was there.
    fn put<'a>(
        &'a self,
        key: &'a FileKey,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// The bytes under `key`, or `None`.
    fn get<'a>(&'a self, key: &'a FileKey) -> BoxFuture<'a, anyhow::Result<Option<Vec<u8>>>>;

    /// Removes `key` (no error when it is absent).
    fn delete<'a>(&'a self, key: &'a FileKey) -> BoxFuture<'a, anyhow::Result<()>>;

    /// `local` or `s3`, for logs and health output.
    fn backend(&self) -> &'static str;
}

/// Files in a local folder.
#[derive(Debug, Clone)]
pub struct LocalFileStore {
    root: PathBuf,
}

impl LocalFileStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &FileKey) -> PathBuf {
        // FileKey has only plain segments: the join stays under root.
        self.root.join(Path::new(key.as_str()))
    }
}

impl FileStore for LocalFileStore {
    fn put<'a>(
        &'a self,
        key: &'a FileKey,
        _content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let path = self.path(key);
            let dir = path.parent().context("a file key has a parent folder")?;
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("Failed to create {}", dir.display()))?;
            // Write aside, then rename: a reader never sees half a file.
            let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&tmp, bytes)
                .await
                .with_context(|| format!("Failed to write {}", tmp.display()))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .with_context(|| format!("Failed to move a file into {}", path.display()))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a FileKey) -> BoxFuture<'a, anyhow::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            match tokio::fs::read(self.path(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(anyhow::Error::new(e).context(format!("Failed to read file {key}"))),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a FileKey) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match tokio::fs::remove_file(self.path(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => {
                    Err(anyhow::Error::new(e).context(format!("Failed to delete file {key}")))
                }
            }
        })
    }

    fn backend(&self) -> &'static str {
        "local"
    }
}

/// S3 location of the attachment store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3StoreSettings {
    pub bucket: String,
    /// Prefix of every key (e.g. `zengine/attachments/`).
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`), which moto, MinIO and most S3-compatible
    /// stores need.
    pub force_path_style: bool,
    pub aws: AwsSettings,
}

/// Attachment storage and upload rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileStoreSettings {
    /// `local` (a folder, the default) or `s3`.
    pub backend: String,
    /// Folder of the `local` backend.
    pub local_dir: PathBuf,
    pub s3: S3StoreSettings,
    /// Largest accepted attachment, in bytes; larger uploads get 413.
    pub max_bytes: usize,
    /// Accepted attachment types (recognised by content, not by the declared type).
    pub content_types: Vec<String>,
}

impl Default for FileStoreSettings {
    fn default() -> Self {
        Self {
            backend: "local".to_owned(),
            local_dir: PathBuf::from("data/files"),
            s3: S3StoreSettings::default(),
            max_bytes: 10 * 1024 * 1024,
            content_types: [
                "application/pdf",
                "image/jpeg",
                "image/png",
                "audio/mpeg",
                "audio/wav",
                "audio/ogg",
                "audio/mp4",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

impl FileStoreSettings {
    /// The configured store.
    pub fn build(&self) -> anyhow::Result<Arc<dyn FileStore>> {
        match self.backend.as_str() {
            "local" => Ok(Arc::new(LocalFileStore::new(&self.local_dir))),
            "s3" => {
                anyhow::ensure!(
                    !self.s3.bucket.is_empty(),
                    "attachments.s3.bucket is required for the s3 backend"
                );
                Ok(Arc::new(S3FileStore::new(self.s3.clone())))
            }
            other => anyhow::bail!("attachments.backend: `{other}` is not `local` or `s3`"),
        }
    }
}

/// The content type of a file from its first bytes, for the types attachments may have.
pub fn sniff_content_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"ID3")
        || (bytes.len() > 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
    {
        Some("audio/mpeg")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        Some("audio/wav")
    } else if bytes.starts_with(b"OggS") {
        Some("audio/ogg")
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        Some("audio/mp4")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_climb_out_of_the_store() {
        for good in ["demo/pc_1/recording.mp3", "a", "x-1_y.z/b"] {
            assert!(FileKey::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a b",
            "ñ",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert!(FileKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(FileKey::parse("x".repeat(513)).is_err());
    }

    #[test]
    fn content_types_are_recognised_by_their_magic_bytes() {
        assert_eq!(sniff_content_type(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff_content_type(b"ID3\x04\0"), Some("audio/mpeg"));
        assert_eq!(
            sniff_content_type(b"RIFF\x24\0\0\0WAVEfmt "),
            Some("audio/wav")
        );
        assert_eq!(sniff_content_type(b"\0\0\0\x20ftypM4A "), Some("audio/mp4"));
        assert_eq!(sniff_content_type(b"OggS\0"), Some("audio/ogg"));
        assert_eq!(sniff_content_type(b"#!/bin/sh\n"), None);
        assert_eq!(sniff_content_type(b""), None);
    }

    #[tokio::test]
    async fn the_local_store_round_trips_replaces_and_deletes() {
        let dir = tempfile_dir();
        let store = LocalFileStore::new(&dir);
        let key = FileKey::parse("demo/pc_1/a.pdf").unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        store.put(&key, "application/pdf", b"%PDF-1").await.unwrap();
        store.put(&key, "application/pdf", b"%PDF-2").await.unwrap();
        assert_eq!(
            store.get(&key).await.unwrap().as_deref(),
            Some(&b"%PDF-2"[..])
        );
        assert!(dir.join("demo/pc_1/a.pdf").is_file());
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_backends_and_bucketless_s3_are_refused() {
        let mut settings = FileStoreSettings {
            backend: "ftp".into(),
            ..FileStoreSettings::default()
        };
        assert!(settings.build().is_err());
        settings.backend = "s3".into();
        assert!(settings.build().unwrap_err().to_string().contains("bucket"));
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("zengine-files-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
