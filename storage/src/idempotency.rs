//! Idempotency records: the response to a request, kept by (tenant, scope, key) until it
//! expires, so a client repeating a request gets the same answer and causes one effect.

use anyhow::Context;
use sqlx::Row;
use zengine_domain::{IdempotencyKey, TenantId};

use super::{Database, now_millis};

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Hash of the request the key was first used with.
    pub request_hash: String,
    pub response_status: u16,
    pub response_body: String,
}

/// A response to remember.
#[derive(Debug, Clone)]
pub struct NewIdempotencyRecord<'a> {
    pub tenant_id: &'a TenantId,
    pub scope: &'a str,
    pub key: &'a IdempotencyKey,
    pub request_hash: &'a str,
    pub response_status: u16,
    pub response_body: &'a str,
    pub ttl_ms: i64,
}

/// Idempotency record queries.
pub struct IdempotencyRepo<'a> {
    pub(super) db: &'a Database,
}

impl IdempotencyRepo<'_> {
    /// The unexpired record for the key, if any.
    pub async fn get(
        &self,
        tenant_id: &TenantId,
        scope: &str,
        key: &IdempotencyKey,
    ) -> anyhow::Result<Option<IdempotencyRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(
            "select request_hash, response_status, response_body from idempotency_record
             where tenant_id = $1 and scope = $2 and idempotency_key = $3 and expires_at > $4",
        )
        .bind(tenant_id.as_str())
        .bind(scope)
        .bind(key.as_str())
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read idempotency record")?;
        tx.commit().await?;
        row.map(|row| {
            let status: i64 = row.get(1);
            Ok(IdempotencyRecord {
                request_hash: row.get(0),
                response_status: u16::try_from(status).context("bad stored status")?,
                response_body: row.get(2),
            })
        })
        .transpose()
    }

    /// Stores the record unless one exists for the key (the first writer wins); returns whether
    /// this call stored it. An expired record is replaced.
    pub async fn put(&self, record: NewIdempotencyRecord<'_>) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(record.tenant_id).await?;
        let now = now_millis();
        let done = sqlx::query(
            "insert into idempotency_record
               (tenant_id, scope, idempotency_key, request_hash, response_status, response_body,
                created_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
             on conflict (tenant_id, scope, idempotency_key) do update
               set request_hash = excluded.request_hash,
                   response_status = excluded.response_status,
                   response_body = excluded.response_body,
                   created_at = excluded.created_at, expires_at = excluded.expires_at
               where idempotency_record.expires_at <= $7",
        )
        .bind(record.tenant_id.as_str())
        .bind(record.scope)
        .bind(record.key.as_str())
        .bind(record.request_hash)
        .bind(i64::from(record.response_status))
        .bind(record.response_body)
        .bind(now)
        .bind(now + record.ttl_ms)
        .execute(&mut *tx)
        .await
        .context("Failed to store idempotency record")?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the tenant's expired records; returns how many.
    pub async fn purge_expired(&self, tenant_id: &TenantId) -> anyhow::Result<u64> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done =
            sqlx::query("delete from idempotency_record where tenant_id = $1 and expires_at <= $2")
                .bind(tenant_id.as_str())
                .bind(now_millis())
                .execute(&mut *tx)
                .await
                .context("Failed to purge idempotency records")?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
