//! Channel connectors' tables: provider accounts → tenants, inbound deduplication, unroutable
//! webhooks and the outbound message log (delivery state, dead letters).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use zengine_domain::TenantId;

use super::{Database, now_millis};
use zengine_domain::channel::breaker::{Admit, Breaker, BreakerSettings, BreakerState};

/// Another tenant has this account key (see [`ChannelRepo::upsert_account`]).
#[derive(Debug, thiserror::Error)]
#[error("account `{account_key}` of `{strategy}` belongs to another tenant")]
pub struct AccountTaken {
    pub strategy: String,
    pub account_key: String,
}

/// A health check's outcome for one account (see [`ChannelRepo::record_health`]).
#[derive(Debug, Clone)]
pub struct HealthChange<'a> {
    pub tenant_id: &'a TenantId,
    pub strategy: &'a str,
    /// `UP` or `DOWN`.
    pub status: &'a str,
    pub detail: &'a str,
    pub at: i64,
}

/// The bot participant of an Amazon Connect chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParticipant {
    pub contact_id: String,
    pub participant_token: String,
    pub connection_token: Option<String>,
    /// Epoch ms; 0 when there is no connection yet.
    pub connection_expires_at: i64,
}

/// The stored health of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelHealth {
    pub strategy: String,
    pub status: String,
    pub detail: String,
    /// Bumped at every status change (the `Channel.HealthChanged` event ids use it).
    pub version: i64,
    pub checked_at: i64,
    pub changed_at: i64,
}

/// A tenant's account at a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAccount {
    pub strategy: String,
    pub account_key: String,
    pub tenant_id: TenantId,
    /// Strategy settings (JSON object); secrets appear only as references.
    pub settings: serde_json::Value,
}

/// One outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRecord {
    pub client_message_id: String,
    pub strategy: String,
    pub recipient: String,
    pub provider_message_id: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// [`state_rank`] of the `state` column in SQL; a final state (FAILED, DEAD) or an unknown one
/// ranks 4, so nothing moves it.
const STATE_RANK_SQL: &str = "(case state when 'PENDING' then 0 when 'SENT' then 1 \
     when 'DELIVERED' then 2 when 'READ' then 3 else 4 end)";

/// Forward-only order of delivery states (FAILED and DEAD end it).
fn state_rank(state: &str) -> i32 {
    match state {
        "PENDING" => 0,
        "SENT" => 1,
        "DELIVERED" => 2,
        "READ" => 3,
        "FAILED" | "DEAD" => 4,
        _ => -1,
    }
}

pub struct ChannelRepo<'a> {
    pub(super) db: &'a Database,
}

impl ChannelRepo<'_> {
    /// Creates or replaces the tenant's account for `strategy`.
    ///
    /// # Errors
    /// [`AccountTaken`] when another tenant has this account key (nothing changes): the
    /// caller's own check may have read before a concurrent claim committed, the key's unique
    /// index decides.
    pub async fn upsert_account(&self, account: &ChannelAccount) -> anyhow::Result<()> {
        let now = now_millis();
        let mut tx = self.db.begin_for(&account.tenant_id).await?;
        sqlx::query("delete from channel_account where tenant_id = $1 and strategy = $2")
            .bind(account.tenant_id.as_str())
            .bind(&account.strategy)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "insert into channel_account (strategy, account_key, tenant_id, settings, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&account.strategy)
        .bind(&account.account_key)
        .bind(account.tenant_id.as_str())
        .bind(account.settings.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The transaction rolls back when dropped: the tenant's previous account stays.
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                return Err(AccountTaken {
                    strategy: account.strategy.clone(),
                    account_key: account.account_key.clone(),
                }
                .into());
            }
            Err(e) => return Err(e).context("Failed to store channel account"),
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account a webhook names (before the tenant is known). On PostgreSQL the transaction
    /// may read this one account (policy `account_routing`), nothing else.
    pub async fn route(
        &self,
        strategy: &str,
        account_key: &str,
    ) -> anyhow::Result<Option<ChannelAccount>> {
        let mut tx = self
            .db
            .begin_with(&[
                ("app.channel_strategy", strategy),
                ("app.channel_account", account_key),
            ])
            .await?;
        let row = sqlx::query(
            "select tenant_id, settings from channel_account where strategy = $1 and account_key = $2",
        )
        .bind(strategy)
        .bind(account_key)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to route channel account")?;
        tx.commit().await?;
        row.map(|r| account_of(strategy, account_key, r))
            .transpose()
    }

    /// The tenant's account for `strategy`.
    pub async fn account(
        &self,
        tenant_id: &TenantId,
        strategy: &str,
    ) -> anyhow::Result<Option<ChannelAccount>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(
            "select tenant_id, settings, account_key from channel_account
             where tenant_id = $1 and strategy = $2",
        )
        .bind(tenant_id.as_str())
        .bind(strategy)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read channel account")?;
        tx.commit().await?;
        row.map(|r| {
            let key: String = r.get(2);
            account_of(strategy, &key, r)
        })
        .transpose()
    }

    /// Every account of a tenant, by strategy name.
    pub async fn accounts(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<ChannelAccount>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select tenant_id, settings, account_key, strategy from channel_account
             where tenant_id = $1 order by strategy",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list channel accounts")?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| {
                let key: String = r.get(2);
                let strategy: String = r.get(3);
                account_of(&strategy, &key, r)
            })
            .collect()
    }

    /// Tenants with at least one channel account (a platform query: on PostgreSQL through the
    /// policy `platform_admin`).
    pub async fn tenants_with_accounts(&self) -> anyhow::Result<Vec<TenantId>> {
        let mut tx = self.db.begin_platform().await?;
        let rows: Vec<String> =
            sqlx::query_scalar("select distinct tenant_id from channel_account order by tenant_id")
                .fetch_all(&mut *tx)
                .await
                .context("Failed to list tenants with channel accounts")?;
        tx.commit().await?;
        rows.iter()
            .map(|t| TenantId::parse(t).map_err(|e| anyhow::anyhow!("stored tenant id: {e}")))
            .collect()
    }

    /// Removes the tenant's account for `strategy`; whether there was one.
    pub async fn delete_account(
        &self,
        tenant_id: &TenantId,
        strategy: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done =
            sqlx::query("delete from channel_account where tenant_id = $1 and strategy = $2")
                .bind(tenant_id.as_str())
                .bind(strategy)
                .execute(&mut *tx)
                .await
                .context("Failed to delete channel account")?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The breaker of (tenant, strategy) (closed when never stored).
    pub async fn breaker(&self, tenant_id: &TenantId, strategy: &str) -> anyhow::Result<Breaker> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let found = read_breaker(&mut tx, tenant_id, strategy).await?;
        tx.commit().await?;
        Ok(found.unwrap_or_default())
    }

    /// Whether a send may call the provider now. Moving an expired OPEN (or a stale trial) to
    /// HALF_OPEN is a compare-and-set, so exactly one concurrent sender gets the trial.
    pub async fn breaker_admit(
        &self,
        tenant_id: &TenantId,
        strategy: &str,
        now: i64,
    ) -> anyhow::Result<Admit> {
        let mut tx = self.db.begin_write_for(tenant_id).await?;
        let Some(current) = read_breaker(&mut tx, tenant_id, strategy).await? else {
            tx.commit().await?;
            return Ok(Admit::Go);
        };
        let (admit, next) = current.admit(now);
        let admit = match next {
            Some(next) => {
                let won = sqlx::query(
                    "update channel_breaker set state = $1, until_ms = $2, updated_at = $3
                     where tenant_id = $4 and strategy = $5 and state = $6 and until_ms = $7",
                )
                .bind(next.state.as_str())
                .bind(next.until_ms)
                .bind(now)
                .bind(tenant_id.as_str())
                .bind(strategy)
                .bind(current.state.as_str())
                .bind(current.until_ms)
                .execute(&mut *tx)
                .await
                .context("Failed to move circuit breaker")?
                .rows_affected()
                    == 1;
                if won { admit } else { Admit::Wait(1_000) }
            }
            None => admit,
        };
        tx.commit().await?;
        Ok(admit)
    }

    /// Records a send's outcome in the breaker (`healthy`: success, or a failure that does not
    /// show an outage). Returns the new state.
    pub async fn breaker_record(
        &self,
        tenant_id: &TenantId,
        strategy: &str,
        healthy: bool,
        settings: &BreakerSettings,
        now: i64,
    ) -> anyhow::Result<Breaker> {
        // Sends' outcomes one at a time per breaker: each reads the failure count and writes it
        // plus one (concurrent failures were lost, and the circuit opened late).
        let mut tx = self
            .db
            .begin_serialised(tenant_id, &format!("breaker/{strategy}"))
            .await?;
        let current = read_breaker(&mut tx, tenant_id, strategy).await?;
        let next = match (&current, healthy) {
            // The common case writes nothing.
            (None, true) => {
                tx.commit().await?;
                return Ok(Breaker::default());
            }
            (Some(b), true) if *b == Breaker::default() => {
                tx.commit().await?;
                return Ok(*b);
            }
            (_, true) => Breaker::default(),
            (c, false) => c.unwrap_or_default().on_outage(settings, now),
        };
        sqlx::query(
            "insert into channel_breaker (tenant_id, strategy, state, failures, opened, until_ms, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7)
             on conflict (tenant_id, strategy) do update set state = excluded.state,
                 failures = excluded.failures, opened = excluded.opened,
                 until_ms = excluded.until_ms, updated_at = excluded.updated_at",
        )
        .bind(tenant_id.as_str())
        .bind(strategy)
        .bind(next.state.as_str())
        .bind(i64::from(next.failures))
        .bind(i64::from(next.opened))
        .bind(next.until_ms)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to store circuit breaker")?;
        tx.commit().await?;
        Ok(next)
    }

    /// Stores a health check's result; when the status changed (or is new), bumps the version
    /// and records `Channel.HealthChanged` in the same transaction. Returns whether it changed.
    pub async fn record_health(&self, change: HealthChange<'_>) -> anyhow::Result<bool> {
        // Checks of one channel one at a time: each reads status and version, then writes (a
        // manual check overlapping the scheduled one took the version back).
        let mut tx = self
            .db
            .begin_serialised(change.tenant_id, &format!("health/{}", change.strategy))
            .await?;
        let current: Option<(String, i64)> = sqlx::query_as(
            "select status, version from channel_health where tenant_id = $1 and strategy = $2",
        )
        .bind(change.tenant_id.as_str())
        .bind(change.strategy)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read channel health")?;
        let changed = current
            .as_ref()
            .is_none_or(|(status, _)| status != change.status);
        let version = current.as_ref().map_or(0, |(_, v)| *v) + i64::from(changed);
        sqlx::query(
            "insert into channel_health (tenant_id, strategy, status, detail, version, checked_at, changed_at)
             values ($1, $2, $3, $4, $5, $6, $6)
             on conflict (tenant_id, strategy) do update set status = excluded.status,
                 detail = excluded.detail, version = excluded.version,
                 checked_at = excluded.checked_at,
                 changed_at = case when channel_health.status = excluded.status
                     then channel_health.changed_at else excluded.changed_at end",
        )
        .bind(change.tenant_id.as_str())
        .bind(change.strategy)
        .bind(change.status)
        .bind(change.detail)
        .bind(version)
        .bind(change.at)
        .execute(&mut *tx)
        .await
        .context("Failed to store channel health")?;
        if changed {
            super::events::record_in(
                &mut tx,
                super::NewEvent {
                    event_id: &format!(
                        "{}/channel/{}/health-{version}",
                        change.tenant_id, change.strategy
                    ),
                    tenant_id: change.tenant_id,
                    event_type: zengine_domain::events::EventType::ChannelHealthChanged,
                    subject: change.strategy,
                    payload: &serde_json::json!({
                        "strategy": change.strategy,
                        "status": change.status,
                        "previous": current.map(|(s, _)| s),
                        "detail": change.detail,
                    }),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// The stored health of the tenant's accounts.
    pub async fn health(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<ChannelHealth>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select strategy, status, detail, version, checked_at, changed_at from channel_health
             where tenant_id = $1 order by strategy",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&mut *tx)
        .await
        .context("Failed to read channel health")?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| ChannelHealth {
                strategy: r.get(0),
                status: r.get(1),
                detail: r.get(2),
                version: r.get(3),
                checked_at: r.get(4),
                changed_at: r.get(5),
            })
            .collect())
    }

    /// Notes why the last attempt failed (the message stays PENDING).
    pub async fn note_error(
        &self,
        tenant_id: &TenantId,
        client_message_id: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update outbound_message set last_error = $1, updated_at = $2
             where tenant_id = $3 and client_message_id = $4",
        )
        .bind(error)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(client_message_id)
        .execute(&mut *tx)
        .await
        .context("Failed to note outbound error")?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims a dead letter for re-driving: DEAD → PENDING with its attempts reset (a re-drive
    /// is a fresh delivery; `last_error` stays). Compare-and-set, so two operators re-driving at
    /// once send it once. Returns the record when this call claimed it.
    pub async fn claim_dead_letter(
        &self,
        tenant_id: &TenantId,
        client_message_id: &str,
    ) -> anyhow::Result<Option<OutboundRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let claimed = sqlx::query(
            "update outbound_message set state = 'PENDING', attempts = 0, updated_at = $1
             where tenant_id = $2 and client_message_id = $3 and state = 'DEAD'",
        )
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(client_message_id)
        .execute(&mut *tx)
        .await
        .context("Failed to claim dead letter")?
        .rows_affected()
            == 1;
        let record = if claimed {
            fetch_outbound(&mut tx, tenant_id, client_message_id).await?
        } else {
            None
        };
        tx.commit().await?;
        Ok(record)
    }

    /// Registers (or replaces) the bot participant token of a Connect contact; a new token
    /// drops the cached connection.
    pub async fn register_connect_participant(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        participant_token: &str,
    ) -> anyhow::Result<()> {
        let now = now_millis();
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "insert into connect_participant (tenant_id, contact_id, participant_token,
                 connection_token, connection_expires_at, created_at, updated_at)
             values ($1, $2, $3, null, 0, $4, $4)
             on conflict (tenant_id, contact_id) do update set
                 participant_token = excluded.participant_token,
                 connection_token = case when connect_participant.participant_token
                     = excluded.participant_token then connect_participant.connection_token end,
                 connection_expires_at = case when connect_participant.participant_token
                     = excluded.participant_token then connect_participant.connection_expires_at
                     else 0 end,
                 updated_at = excluded.updated_at",
        )
        .bind(tenant_id.as_str())
        .bind(contact_id)
        .bind(participant_token)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to register the Connect participant")?;
        tx.commit().await?;
        Ok(())
    }

    /// The bot participant of a Connect contact.
    pub async fn connect_participant(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
    ) -> anyhow::Result<Option<ConnectParticipant>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row: Option<(String, Option<String>, i64)> = sqlx::query_as(
            "select participant_token, connection_token, connection_expires_at
             from connect_participant where tenant_id = $1 and contact_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(contact_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read the Connect participant")?;
        tx.commit().await?;
        Ok(row.map(
            |(participant_token, connection_token, connection_expires_at)| ConnectParticipant {
                contact_id: contact_id.to_owned(),
                participant_token,
                connection_token,
                connection_expires_at,
            },
        ))
    }

    /// Caches a participant connection of a Connect contact.
    pub async fn store_connect_connection(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        connection_token: &str,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update connect_participant set connection_token = $1, connection_expires_at = $2,
                 updated_at = $3
             where tenant_id = $4 and contact_id = $5",
        )
        .bind(connection_token)
        .bind(expires_at)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(contact_id)
        .execute(&mut *tx)
        .await
        .context("Failed to store the Connect connection")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an accepted inbound provider message; `false` when it was seen before.
    pub async fn first_receipt(
        &self,
        strategy: &str,
        provider_message_id: &str,
        tenant_id: &TenantId,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done = sqlx::query(
            "insert into inbound_receipt (strategy, provider_message_id, tenant_id, received_at)
             values ($1, $2, $3, $4) on conflict (strategy, provider_message_id) do nothing",
        )
        .bind(strategy)
        .bind(provider_message_id)
        .bind(tenant_id.as_str())
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to record inbound receipt")?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether the tenant accepted a provider message id before.
    pub async fn seen(
        &self,
        tenant_id: &TenantId,
        strategy: &str,
        provider_message_id: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let found: Option<String> = sqlx::query_scalar(
            "select tenant_id from inbound_receipt
             where tenant_id = $1 and strategy = $2 and provider_message_id = $3",
        )
        .bind(tenant_id.as_str())
        .bind(strategy)
        .bind(provider_message_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read inbound receipt")?;
        tx.commit().await?;
        Ok(found.is_some())
    }

    /// Notes a webhook for an account nobody owns (idempotent by `id`).
    pub async fn record_unroutable(
        &self,
        id: &str,
        strategy: &str,
        account_key: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "insert into unroutable_webhook (id, strategy, account_key, received_at)
             values ($1, $2, $3, $4) on conflict (id) do nothing",
        )
        .bind(id)
        .bind(strategy)
        .bind(account_key)
        .bind(now_millis())
        .execute(self.db.pool())
        .await
        .context("Failed to record unroutable webhook")?;
        Ok(())
    }

    /// How many unroutable webhooks were recorded for an account.
    pub async fn unroutable_count(&self, strategy: &str, account_key: &str) -> anyhow::Result<i64> {
        sqlx::query_scalar(
            "select count(*) from unroutable_webhook where strategy = $1 and account_key = $2",
        )
        .bind(strategy)
        .bind(account_key)
        .fetch_one(self.db.pool())
        .await
        .context("Failed to count unroutable webhooks")
    }

    /// The outbound message, creating it PENDING on first sight. Counts an attempt.
    pub async fn begin_send(
        &self,
        tenant_id: &TenantId,
        client_message_id: &str,
        strategy: &str,
        recipient: &str,
        payload: &serde_json::Value,
    ) -> anyhow::Result<OutboundRecord> {
        let now = now_millis();
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "insert into outbound_message (tenant_id, client_message_id, strategy, recipient, state,
                 attempts, payload, created_at, updated_at)
             values ($1, $2, $3, $4, 'PENDING', 0, $5, $6, $6)
             on conflict (tenant_id, client_message_id) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(client_message_id)
        .bind(strategy)
        .bind(recipient)
        .bind(payload.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to record outbound message")?;
        sqlx::query(
            "update outbound_message set attempts = attempts + 1, updated_at = $1
             where tenant_id = $2 and client_message_id = $3",
        )
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(client_message_id)
        .execute(&mut *tx)
        .await?;
        let record = fetch_outbound(&mut tx, tenant_id, client_message_id)
            .await?
            .context("outbound message vanished")?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn outbound(
        &self,
        tenant_id: &TenantId,
        client_message_id: &str,
    ) -> anyhow::Result<Option<OutboundRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let record = fetch_outbound(&mut tx, tenant_id, client_message_id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The provider accepted the message.
    pub async fn mark_sent(
        &self,
        tenant_id: &TenantId,
        client_message_id: &str,
        provider_message_id: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update outbound_message set provider_message_id = $1, last_error = null,
                 state = case when state = 'PENDING' or state = 'DEAD' then 'SENT' else state end,
                 updated_at = $2
             where tenant_id = $3 and client_message_id = $4",
        )
        .bind(provider_message_id)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(client_message_id)
        .execute(&mut *tx)
        .await
        .context("Failed to mark outbound message sent")?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives up on a message (dead letter) with the reason.
    pub async fn mark_dead(
        &self,
        tenant_id: &TenantId,
        client_message_id: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update outbound_message set state = 'DEAD', last_error = $1, updated_at = $2
             where tenant_id = $3 and client_message_id = $4 and provider_message_id is null",
        )
        .bind(error)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(client_message_id)
        .execute(&mut *tx)
        .await
        .context("Failed to dead-letter outbound message")?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies a provider delivery status, forward only (`SENT < DELIVERED < READ`, FAILED
    /// final). A status may arrive before the send completed: `callback_data` (our client
    /// message id, echoed by the provider) links it. Returns whether the state moved.
    pub async fn apply_status(
        &self,
        tenant_id: &TenantId,
        provider_message_id: &str,
        callback_data: Option<&str>,
        state: &str,
        error: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        if let Some(client_id) = callback_data {
            sqlx::query(
                "update outbound_message set provider_message_id = $1
                 where tenant_id = $2 and client_message_id = $3 and provider_message_id is null",
            )
            .bind(provider_message_id)
            .bind(tenant_id.as_str())
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        }
        // One conditional update, not a read and then a write: two statuses of the same message
        // racing (`read` and a late `delivered`, say) must not let the slower one move the
        // state back, and on SQLite a transaction that reads first cannot take the write lock
        // once another writer committed.
        let moved = sqlx::query(&format!(
            "update outbound_message set state = $1, last_error = coalesce($2, last_error),
                 updated_at = $3
             where tenant_id = $4 and provider_message_id = $5 and {STATE_RANK_SQL} < $6"
        ))
        .bind(state)
        .bind(error)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(provider_message_id)
        .bind(state_rank(state))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(moved)
    }

    /// Dead letters (newest first), for operators.
    pub async fn dead_letters(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<OutboundRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select {OUTBOUND_COLUMNS} from outbound_message where tenant_id = $1 and state = 'DEAD'
             order by updated_at desc limit 500"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(outbound_of).collect()
    }

    /// Dead letters whose `client_message_id` starts with `prefix` (newest first, at most
    /// 500): a conversation's are `{conversation workflow id}/…`.
    pub async fn dead_letters_with_prefix(
        &self,
        tenant_id: &TenantId,
        prefix: &str,
    ) -> anyhow::Result<Vec<OutboundRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        // `substr` rather than `like`: ids may contain `%` and `_`.
        let rows = sqlx::query(&format!(
            "select {OUTBOUND_COLUMNS} from outbound_message
             where tenant_id = $1 and state = 'DEAD'
               and substr(client_message_id, 1, length($2)) = $2
             order by updated_at desc limit 500"
        ))
        .bind(tenant_id.as_str())
        .bind(prefix)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(outbound_of).collect()
    }
}

const OUTBOUND_COLUMNS: &str = "client_message_id, strategy, recipient, provider_message_id, \
     state, attempts, last_error, payload, created_at, updated_at";

async fn read_breaker(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    strategy: &str,
) -> anyhow::Result<Option<Breaker>> {
    let row: Option<(String, i64, i64, i64)> = sqlx::query_as(
        "select state, failures, opened, until_ms from channel_breaker
         where tenant_id = $1 and strategy = $2",
    )
    .bind(tenant_id.as_str())
    .bind(strategy)
    .fetch_optional(conn)
    .await
    .context("Failed to read circuit breaker")?;
    row.map(|(state, failures, opened, until_ms)| {
        Ok(Breaker {
            state: BreakerState::parse(&state)
                .with_context(|| format!("stored breaker state `{state}`"))?,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            opened: u32::try_from(opened).unwrap_or(u32::MAX),
            until_ms,
        })
    })
    .transpose()
}

async fn fetch_outbound(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    client_message_id: &str,
) -> anyhow::Result<Option<OutboundRecord>> {
    sqlx::query(&format!(
        "select {OUTBOUND_COLUMNS} from outbound_message
         where tenant_id = $1 and client_message_id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(client_message_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read outbound message")?
    .map(outbound_of)
    .transpose()
}

fn outbound_of(row: sqlx::any::AnyRow) -> anyhow::Result<OutboundRecord> {
    let payload: String = row.get(7);
    Ok(OutboundRecord {
        client_message_id: row.get(0),
        strategy: row.get(1),
        recipient: row.get(2),
        provider_message_id: row.get(3),
        state: row.get(4),
        attempts: row.get(5),
        last_error: row.get(6),
        payload: serde_json::from_str(&payload).context("stored outbound payload")?,
        created_at: row.get(8),
        updated_at: row.get(9),
    })
}

fn account_of(
    strategy: &str,
    account_key: &str,
    row: sqlx::any::AnyRow,
) -> anyhow::Result<ChannelAccount> {
    let tenant: String = row.get(0);
    let settings: String = row.get(1);
    Ok(ChannelAccount {
        strategy: strategy.to_owned(),
        account_key: account_key.to_owned(),
        tenant_id: TenantId::parse(&tenant)
            .map_err(|e| anyhow::anyhow!("stored tenant id: {e}"))?,
        settings: serde_json::from_str(&settings).context("stored channel settings")?,
    })
}
