//! Payload encryption: an AES-256-GCM [`PayloadCodec`] applied on every Temporal connection.
//!
//! Every payload leaving a ZEngine process (workflow and activity inputs and results, signals,
//! queries, updates, memos, failure details) is serialised to protobuf, encrypted with a fresh
//! random 96-bit nonce and stored as `nonce ‖ ciphertext ‖ tag` with the metadata
//! `encoding: binary/encrypted` and `encryption-key-id: <id>`. Histories at rest therefore hold
//! no plaintext payloads; the operator codec endpoint (`/codec/decode`) and the clients built by
//! `zengine_workers::connect` decrypt them.
//!
//! Keys come from configuration as a keyring of `{id, secret_ref}` (secret references resolved
//! by `zengine_activities::secrets`): the key marked `primary` (else the first) encrypts, every
//! key decrypts, so rotation is "add the new key first, keep the old ones until no history needs
//! them". A payload with an unknown key id fails to decode with an error naming the id.
//!
//! The keyring comes from `zengine_workers::codec::CodecSettings`; with no keys configured the
//! built-in **development key** (id [`DEV_KEY_ID`]) is used; it is public (derived from a
//! constant in this file) and `zengine api`/`zengine worker` refuse it unless
//! `temporal.codec.allow_dev_key` is set. The codec lives here, next to the replayer, because
//! replaying recorded (encrypted) histories needs it; it never runs inside workflow code.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use base64::Engine;
use futures::future::BoxFuture;
use prost::Message;
use sha2::Digest;
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConversionError, PayloadConverter,
    SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// `encoding` metadata value of an encrypted payload.
pub const ENCRYPTED_ENCODING: &str = "binary/encrypted";
/// Metadata key naming the key that encrypted a payload.
pub const KEY_ID_METADATA: &str = "encryption-key-id";
/// Key id of the built-in development key.
pub const DEV_KEY_ID: &str = "zengine-dev";
/// Seed of the development key. Public on purpose: never use it for real data.
const DEV_KEY_SEED: &str = "zengine development payload key; public, not for production";
const NONCE_LEN: usize = 12;

/// Why a payload could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("payload encrypted with unknown key id `{0}` (not in temporal.codec.keys)")]
    UnknownKey(String),
    #[error("encrypted payload has no `encryption-key-id` metadata")]
    MissingKeyId,
    #[error("encrypted payload with key id `{0}` cannot be decrypted (corrupt or wrong key)")]
    Decrypt(String),
    #[error("decrypted payload is not a protobuf Payload")]
    Corrupt,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The AES-256-GCM codec over a keyring.
#[derive(Clone)]
pub struct EncryptionCodec {
    keys: Arc<Vec<Key>>,
}

impl std::fmt::Debug for EncryptionCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionCodec")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// Parses a 32-byte key given as base64 or 64 hex digits.
pub fn parse_key(id: &str, value: &str) -> anyhow::Result<[u8; 32]> {
    let value = value.trim();
    let bytes = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(value).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(value).ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("codec key `{id}` is not 32 bytes as base64 or 64 hex digits"))
}

impl EncryptionCodec {
    /// A codec over `(id, 32-byte key)` pairs; the first encrypts.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> anyhow::Result<Self> {
        anyhow::ensure!(!keys.is_empty(), "the codec keyring is empty");
        let mut seen = std::collections::HashSet::new();
        let keys = keys
            .into_iter()
            .map(|(id, key)| {
                anyhow::ensure!(
                    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()),
                    "codec key id `{id}` must be 1-64 printable ASCII characters"
                );
                anyhow::ensure!(seen.insert(id.clone()), "codec key id `{id}` appears twice");
                Ok(Key {
                    id,
                    cipher: Aes256Gcm::new(&key.into()),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// The codec on the public development key.
    pub fn dev() -> Self {
        let key: [u8; 32] = sha2::Sha256::digest(DEV_KEY_SEED.as_bytes()).into();
        Self::new(vec![(DEV_KEY_ID.to_owned(), key)]).expect("the dev key is valid")
    }

    /// Key ids, encrypting key first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether this codec runs on the public development key.
    pub fn is_dev(&self) -> bool {
        self.keys.len() == 1 && self.keys[0].id == DEV_KEY_ID
    }

    /// Encrypts one payload with the primary key.
    pub fn encrypt(&self, payload: &Payload) -> Payload {
        let key = &self.keys[0];
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                payload.encode_to_vec().as_slice(),
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce_bytes);
        data.extend_from_slice(&sealed);
        Payload {
            metadata: [
                (
                    "encoding".to_owned(),
                    ENCRYPTED_ENCODING.as_bytes().to_vec(),
                ),
                (KEY_ID_METADATA.to_owned(), key.id.as_bytes().to_vec()),
            ]
            .into(),
            data,
            ..Payload::default()
        }
    }

    /// Decrypts one payload; payloads that are not `binary/encrypted` pass through unchanged
    /// (histories recorded before encryption, patch markers, search attributes).
    pub fn decrypt(&self, payload: Payload) -> Result<Payload, CodecError> {
        if payload.metadata.get("encoding").map(Vec::as_slice)
            != Some(ENCRYPTED_ENCODING.as_bytes())
        {
            return Ok(payload);
        }
        let id = payload
            .metadata
            .get(KEY_ID_METADATA)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or(CodecError::MissingKeyId)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CodecError::UnknownKey(id.clone()))?;
        if payload.data.len() < NONCE_LEN {
            return Err(CodecError::Decrypt(id));
        }
        let (nonce, sealed) = payload.data.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CodecError::Decrypt(id))?;
        Payload::decode(plain.as_slice()).map_err(|_| CodecError::Corrupt)
    }

    /// The data converter of every ZEngine client: JSON payloads and this codec.
    ///
    /// Failure messages stay plaintext (`DefaultFailureConverter::new(false)`): with encoded
    /// failure attributes the SDK hands workflow code the message "Encoded failure" instead of
    /// the activity's error (it does not decode them on the workflow side), which breaks
    /// dead-letter reasons and error branches. Activities therefore keep message texts and
    /// phone numbers out of their error messages.
    pub fn data_converter(&self) -> DataConverter {
        DataConverter::new(
            PayloadConverter::default(),
            DefaultFailureConverter::new(false),
            self.clone(),
        )
    }
}

impl PayloadCodec for EncryptionCodec {
    fn encode(
        &self,
        _context: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let encoded = payloads.iter().map(|p| self.encrypt(p)).collect();
        Box::pin(async move { Ok(encoded) })
    }

    fn decode(
        &self,
        _context: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let decoded = payloads
            .into_iter()
            .map(|p| self.decrypt(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)));
        Box::pin(async move { decoded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_payload(text: &str) -> Payload {
        Payload {
            metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
            data: serde_json::to_vec(text).unwrap(),
            ..Payload::default()
        }
    }

    #[test]
    fn round_trip_hides_the_plaintext_and_names_the_key() {
        let codec = EncryptionCodec::new(vec![("k1".into(), [7; 32])]).unwrap();
        let plain = json_payload("hola +5215512345678");
        let sealed = codec.encrypt(&plain);
        assert_eq!(sealed.metadata["encoding"], ENCRYPTED_ENCODING.as_bytes());
        assert_eq!(sealed.metadata[KEY_ID_METADATA], b"k1");
        assert!(!String::from_utf8_lossy(&sealed.data).contains("5215512345678"));
        // A fresh nonce per payload: the same plaintext never encrypts the same way twice.
        assert_ne!(sealed.data, codec.encrypt(&plain).data);
        assert_eq!(codec.decrypt(sealed).unwrap(), plain);
    }

    #[test]
    fn rotation_keeps_old_keys_decrypting_and_unknown_keys_fail_clearly() {
        let old = EncryptionCodec::new(vec![("old".into(), [1; 32])]).unwrap();
        let sealed = old.encrypt(&json_payload("x"));
        let rotated =
            EncryptionCodec::new(vec![("new".into(), [2; 32]), ("old".into(), [1; 32])]).unwrap();
        assert_eq!(rotated.decrypt(sealed.clone()).unwrap(), json_payload("x"));
        assert_eq!(
            rotated.encrypt(&json_payload("y")).metadata[KEY_ID_METADATA],
            b"new"
        );
        let other = EncryptionCodec::new(vec![("new".into(), [2; 32])]).unwrap();
        let err = other.decrypt(sealed.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload encrypted with unknown key id `old` (not in temporal.codec.keys)"
        );
        // Same id, different key material: authentication fails, no garbage comes out.
        let forged = EncryptionCodec::new(vec![("old".into(), [9; 32])]).unwrap();
        assert!(matches!(
            forged.decrypt(sealed.clone()),
            Err(CodecError::Decrypt(_))
        ));
        let mut truncated = sealed;
        truncated.data.truncate(5);
        assert!(matches!(
            old.decrypt(truncated),
            Err(CodecError::Decrypt(_))
        ));
        // Plain payloads (old histories, patch markers) pass through.
        assert_eq!(old.decrypt(json_payload("p")).unwrap(), json_payload("p"));
    }
}
