//! The agent desk through Chatwoot: per-tenant configuration, the mirror of each handoff and the
//! Chatwoot messages ZEngine posted (so a retried activity posts once, and a webhook about our
//! own message is recognised as an echo).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use zengine_domain::TenantId;

use super::{Database, now_millis};

/// A tenant's Chatwoot configuration. Secrets are references (`env:NAME`, `file:/path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatwootSettings {
    /// `https://chatwoot.example` (no trailing slash).
    pub base_url: String,
    pub account_id: i64,
    pub inbox_id: i64,
    /// Reference of the agent/bot `api_access_token`.
    pub api_token_ref: String,
    /// Reference of the webhook's HMAC secret.
    pub webhook_secret_ref: String,
}

/// The mirror of one handoff, filled in as the activity goes (contact, then conversation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatwootLink {
    pub handoff_key: String,
    pub workflow_id: String,
    pub channel: String,
    pub contact: String,
    pub chatwoot_contact_id: Option<i64>,
    pub source_id: Option<String>,
    pub chatwoot_conversation_id: Option<i64>,
}

pub struct ChatwootRepo<'a> {
    pub(super) db: &'a Database,
}

impl ChatwootRepo<'_> {
    pub async fn settings(&self, tenant: &TenantId) -> anyhow::Result<Option<ChatwootSettings>> {
        let mut tx = self.db.begin_for(tenant).await?;
        let row = sqlx::query(
            "select base_url, account_id, inbox_id, api_token_ref, webhook_secret_ref
             from chatwoot_settings where tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read Chatwoot settings")?;
        tx.commit().await?;
        Ok(row.map(|row| ChatwootSettings {
            base_url: row.get(0),
            account_id: row.get(1),
            inbox_id: row.get(2),
            api_token_ref: row.get(3),
            webhook_secret_ref: row.get(4),
        }))
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &ChatwootSettings,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant).await?;
        sqlx::query(
            "insert into chatwoot_settings
               (tenant_id, base_url, account_id, inbox_id, api_token_ref, webhook_secret_ref,
                updated_at)
             values ($1, $2, $3, $4, $5, $6, $7)
             on conflict (tenant_id) do update set
               base_url = excluded.base_url, account_id = excluded.account_id,
               inbox_id = excluded.inbox_id, api_token_ref = excluded.api_token_ref,
               webhook_secret_ref = excluded.webhook_secret_ref, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(&settings.base_url)
        .bind(settings.account_id)
        .bind(settings.inbox_id)
        .bind(&settings.api_token_ref)
        .bind(&settings.webhook_secret_ref)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to store Chatwoot settings")?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether there was a configuration to delete.
    pub async fn delete_settings(&self, tenant: &TenantId) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant).await?;
        let done = sqlx::query("delete from chatwoot_settings where tenant_id = $1")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .context("Failed to delete Chatwoot settings")?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    fn link_of(row: &sqlx::any::AnyRow) -> ChatwootLink {
        ChatwootLink {
            handoff_key: row.get(0),
            workflow_id: row.get(1),
            channel: row.get(2),
            contact: row.get(3),
            chatwoot_contact_id: row.get(4),
            source_id: row.get(5),
            chatwoot_conversation_id: row.get(6),
        }
    }

    const LINK_COLUMNS: &'static str = "handoff_key, workflow_id, channel, contact, \
        chatwoot_contact_id, source_id, chatwoot_conversation_id";

    /// The mirror of a handoff, as far as it got.
    pub async fn link(
        &self,
        tenant: &TenantId,
        handoff_key: &str,
    ) -> anyhow::Result<Option<ChatwootLink>> {
        let mut tx = self.db.begin_for(tenant).await?;
        let row = sqlx::query(&format!(
            "select {} from chatwoot_conversation where tenant_id = $1 and handoff_key = $2",
            Self::LINK_COLUMNS
        ))
        .bind(tenant.as_str())
        .bind(handoff_key)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read Chatwoot link")?;
        tx.commit().await?;
        Ok(row.as_ref().map(Self::link_of))
    }

    /// The handoff a Chatwoot conversation mirrors (the newest, should there be several).
    pub async fn link_by_conversation(
        &self,
        tenant: &TenantId,
        chatwoot_conversation_id: i64,
    ) -> anyhow::Result<Option<ChatwootLink>> {
        let mut tx = self.db.begin_for(tenant).await?;
        let row = sqlx::query(&format!(
            "select {} from chatwoot_conversation
             where tenant_id = $1 and chatwoot_conversation_id = $2
             order by created_at desc limit 1",
            Self::LINK_COLUMNS
        ))
        .bind(tenant.as_str())
        .bind(chatwoot_conversation_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read Chatwoot link")?;
        tx.commit().await?;
        Ok(row.as_ref().map(Self::link_of))
    }

    /// Stores the link as it stands now (insert, or overwrite the ids found so far).
    pub async fn save_link(&self, tenant: &TenantId, link: &ChatwootLink) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant).await?;
        let now = now_millis();
        sqlx::query(
            "insert into chatwoot_conversation
               (tenant_id, handoff_key, workflow_id, channel, contact, chatwoot_contact_id,
                source_id, chatwoot_conversation_id, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             on conflict (tenant_id, handoff_key) do update set
               chatwoot_contact_id = excluded.chatwoot_contact_id,
               source_id = excluded.source_id,
               chatwoot_conversation_id = excluded.chatwoot_conversation_id,
               updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(&link.handoff_key)
        .bind(&link.workflow_id)
        .bind(&link.channel)
        .bind(&link.contact)
        .bind(link.chatwoot_contact_id)
        .bind(&link.source_id)
        .bind(link.chatwoot_conversation_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to store Chatwoot link")?;
        tx.commit().await?;
        Ok(())
    }

    /// The Chatwoot id of a message ZEngine posted under `message_key`, if it did.
    pub async fn posted(
        &self,
        tenant: &TenantId,
        message_key: &str,
    ) -> anyhow::Result<Option<i64>> {
        let mut tx = self.db.begin_for(tenant).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "select chatwoot_message_id from chatwoot_message
             where tenant_id = $1 and message_key = $2",
        )
        .bind(tenant.as_str())
        .bind(message_key)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read Chatwoot message")?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn save_posted(
        &self,
        tenant: &TenantId,
        message_key: &str,
        chatwoot_message_id: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant).await?;
        sqlx::query(
            "insert into chatwoot_message (tenant_id, message_key, chatwoot_message_id, created_at)
             values ($1, $2, $3, $4) on conflict (tenant_id, message_key) do nothing",
        )
        .bind(tenant.as_str())
        .bind(message_key)
        .bind(chatwoot_message_id)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to store Chatwoot message")?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a Chatwoot message id is one ZEngine posted (a webhook about it is an echo).
    pub async fn is_ours(
        &self,
        tenant: &TenantId,
        chatwoot_message_id: i64,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant).await?;
        let found: Option<String> = sqlx::query_scalar(
            "select message_key from chatwoot_message
             where tenant_id = $1 and chatwoot_message_id = $2 limit 1",
        )
        .bind(tenant.as_str())
        .bind(chatwoot_message_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read Chatwoot message")?;
        tx.commit().await?;
        Ok(found.is_some())
    }
}
