//! API keys of partner integrations: `zk_<key_id>_<secret>`, stored as the SHA-256 of the secret.
//!
//! The secret is 244 random bits, so a plain SHA-256 (no slow password hash) is enough: nobody
//! can brute-force it from the hash, and checking a key costs one indexed read and one hash.

use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::Row;
use zengine_domain::TenantId;

use super::{Database, now_millis};

/// Prefix of every key, so leaked keys are easy to recognise (and to scan for).
pub const KEY_PREFIX: &str = "zk_";

/// An API key as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub key_id: String,
    #[serde(serialize_with = "tenant_str")]
    pub tenant_id: TenantId,
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    /// Per-key token bucket; `None`: the configured default.
    pub rate_per_minute: Option<i64>,
    pub burst: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn tenant_str<S: serde::Serializer>(t: &TenantId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub tenant_id: &'a TenantId,
    pub name: &'a str,
    pub role: &'a str,
    pub rate_per_minute: Option<i64>,
    pub burst: Option<i64>,
    pub created_by: &'a str,
}

/// What revoking found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now.
    Now(ApiKey),
    /// It was revoked before (nothing changed).
    Already(ApiKey),
    NotFound,
}

/// The parts of a presented key.
pub fn parse_key(presented: &str) -> Option<(&str, &str)> {
    let (id, secret) = presented.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares in time independent of where the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

const COLUMNS: &str = "key_id, tenant_id, name, role, rate_per_minute, burst, created_by, \
                       created_at, revoked_at";

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<ApiKey> {
    Ok(ApiKey {
        key_id: row.get(0),
        tenant_id: TenantId::parse(row.get::<String, _>(1)).context("stored tenant id")?,
        name: row.get(2),
        role: row.get(3),
        rate_per_minute: row.get(4),
        burst: row.get(5),
        created_by: row.get(6),
        created_at: row.get(7),
        revoked_at: row.get(8),
    })
}

/// API key queries.
pub struct ApiKeyRepo<'a> {
    pub(super) db: &'a Database,
}

impl ApiKeyRepo<'_> {
    /// Creates a key; returns it and the full key text, which is never stored or shown again.
    #[tracing::instrument(name = "Create API key", skip_all, fields(tenant_id = %key.tenant_id))]
    pub async fn create(&self, key: NewApiKey<'_>) -> anyhow::Result<(ApiKey, String)> {
        // uuid v4 draws from the OS generator: 122 random bits each.
        let key_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = now_millis();
        let mut tx = self.db.begin_for(key.tenant_id).await?;
        sqlx::query(
            "insert into api_key (key_id, tenant_id, name, role, secret_hash, rate_per_minute,
                                  burst, created_by, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key_id)
        .bind(key.tenant_id.as_str())
        .bind(key.name)
        .bind(key.role)
        .bind(hash(&secret))
        .bind(key.rate_per_minute)
        .bind(key.burst)
        .bind(key.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to create the API key")?;
        tx.commit().await?;
        let stored = ApiKey {
            key_id: key_id.clone(),
            tenant_id: key.tenant_id.clone(),
            name: key.name.to_owned(),
            role: key.role.to_owned(),
            rate_per_minute: key.rate_per_minute,
            burst: key.burst,
            created_by: key.created_by.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        Ok((stored, format!("{KEY_PREFIX}{key_id}_{secret}")))
    }

    /// The tenant's keys, oldest first, revoked ones included.
    pub async fn list(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<ApiKey>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from api_key where tenant_id = $1 order by created_at, key_id"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list API keys")?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes the tenant's key `key_id`.
    #[tracing::instrument(name = "Revoke API key", skip_all, fields(tenant_id = %tenant_id, key_id))]
    pub async fn revoke(&self, tenant_id: &TenantId, key_id: &str) -> anyhow::Result<Revoked> {
        let mut tx = self.db.begin_write_for(tenant_id).await?;
        let row = sqlx::query(&format!(
            "select {COLUMNS} from api_key where tenant_id = $1 and key_id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read the API key")?;
        let Some(row) = row else {
            return Ok(Revoked::NotFound);
        };
        let mut key = from_row(&row)?;
        if key.revoked_at.is_some() {
            return Ok(Revoked::Already(key));
        }
        let now = now_millis();
        // Compare-and-set: of two revocations at once, one revokes; the other finds it done.
        let done = sqlx::query(
            "update api_key set revoked_at = $1
             where tenant_id = $2 and key_id = $3 and revoked_at is null",
        )
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(key_id)
        .execute(&mut *tx)
        .await
        .context("Failed to revoke the API key")?;
        if done.rows_affected() == 0 {
            let row = sqlx::query(&format!(
                "select {COLUMNS} from api_key where tenant_id = $1 and key_id = $2"
            ))
            .bind(tenant_id.as_str())
            .bind(key_id)
            .fetch_one(&mut *tx)
            .await
            .context("Failed to read the API key")?;
            tx.commit().await?;
            return Ok(Revoked::Already(from_row(&row)?));
        }
        tx.commit().await?;
        key.revoked_at = Some(now);
        Ok(Revoked::Now(key))
    }

    /// The live key a caller presented, or `None` when it is malformed, unknown, wrong or
    /// revoked (the caller cannot tell which). Runs before the tenant is known: on PostgreSQL
    /// the transaction may read this one key by id (policy `key_lookup`), nothing else.
    pub async fn authenticate(&self, presented: &str) -> anyhow::Result<Option<ApiKey>> {
        let Some((key_id, secret)) = parse_key(presented) else {
            return Ok(None);
        };
        let mut tx = self.db.begin_with(&[("app.api_key_id", key_id)]).await?;
        let row = sqlx::query(&format!(
            "select {COLUMNS}, secret_hash from api_key where key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read the API key")?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored_hash: String = row.get(9);
        let key = from_row(&row)?;
        Ok((same(&stored_hash, &hash(secret)) && key.revoked_at.is_none()).then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_parse() {
        let id = "0123456789abcdef";
        let secret = "a".repeat(64);
        assert_eq!(
            parse_key(&format!("zk_{id}_{secret}")),
            Some((id, secret.as_str()))
        );
        for bad in [
            format!("zk_{id}{secret}"),
            format!("zk_{id}_{}", &secret[1..]),
            format!("zz_{id}_{secret}"),
            format!("zk_{}_{secret}", "g".repeat(16)),
            String::new(),
            "zk_".to_owned(),
        ] {
            assert_eq!(parse_key(&bad), None, "{bad}");
        }
    }
}
