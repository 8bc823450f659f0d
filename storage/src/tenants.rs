//! Tenants and their published flows.

use anyhow::Context;
use sqlx::Row;
use zengine_domain::TenantId;
use zengine_domain::flow::FlowGraph;

use super::events::{NewEvent, record_in as record_event_in};
use super::payments::PaymentSettings;
use super::{Database, now_millis};

/// Who changed what, recorded as a `Tenant.*` domain event with the change it describes.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    /// Unique per change (a UUID).
    pub event_id: &'a str,
    /// `Tenant.Created`, `Tenant.Updated`, `Tenant.Suspended`, …
    pub event_type: zengine_domain::events::EventType,
    /// The caller (`sub` of the JWT, `admin-token`, …).
    pub actor: &'a str,
    /// What changed (never secret values).
    pub change: serde_json::Value,
}

impl Audit<'_> {
    pub async fn record_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
    ) -> anyhow::Result<()> {
        let payload = serde_json::json!({"actor": self.actor, "change": self.change});
        record_event_in(
            conn,
            NewEvent {
                event_id: self.event_id,
                tenant_id,
                event_type: self.event_type,
                subject: tenant_id.as_str(),
                payload: &payload,
            },
        )
        .await?;
        Ok(())
    }
}

/// Settings stored on the tenant row; `None` leaves one unchanged.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange<'a> {
    pub allowed_http_hosts: Option<&'a [String]>,
    pub cors_origins: Option<&'a [String]>,
    pub payment: Option<&'a PaymentSettings>,
    /// The stored rules `payment` was computed from: it is written only if they are still
    /// what is stored (a patch applied to rules another admin just changed would undo that
    /// change). `None`: written as is.
    pub payment_was: Option<&'a PaymentSettings>,
}

async fn record_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
) -> anyhow::Result<Option<TenantRecord>> {
    let row = sqlx::query(&format!(
        "select {RECORD_COLUMNS} from tenant where tenant_id = $1"
    ))
    .bind(tenant_id.as_str())
    .fetch_optional(conn)
    .await
    .context("Failed to read tenant")?;
    row.as_ref().map(record_of).transpose()
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub name: String,
    pub main_flow_id: String,
    /// Suspended tenants' API calls get 403 and their webhooks are answered but not processed.
    pub suspended: bool,
}

/// A tenant as the administration API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub name: String,
    pub main_flow_id: String,
    /// `active`, `suspended` or `erased` (suspended for good: its secrets are gone).
    pub status: String,
    pub suspended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A flow id and its published versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlowVersions {
    pub flow_id: String,
    /// Oldest first.
    pub versions: Vec<FlowVersionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlowVersionInfo {
    pub version: u32,
    pub published_at: i64,
    /// Who published it (the caller's subject); `None` for seeded versions and versions
    /// published before this was recorded.
    pub published_by: Option<String>,
}

/// A flow's unpublished working copy ([`TenantRepo::save_draft`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlowDraft {
    pub flow_id: String,
    /// As saved: not validated (a draft may be half done).
    pub definition: serde_json::Value,
    pub saved_by: String,
    pub saved_at: i64,
}

/// Outcome of [`TenantRepo::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Now(TenantRecord),
    /// A tenant with this id exists (it is not changed).
    Exists,
}

const RECORD_COLUMNS: &str =
    "tenant_id, name, main_flow_id, status, suspended_at, created_at, updated_at";

fn record_of(row: &sqlx::any::AnyRow) -> anyhow::Result<TenantRecord> {
    let id: String = row.get(0);
    Ok(TenantRecord {
        tenant_id: TenantId::parse(&id).map_err(|e| anyhow::anyhow!("stored tenant id: {e}"))?,
        name: row.get(1),
        main_flow_id: row.get(2),
        status: row.get(3),
        suspended_at: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    })
}

/// Tenant queries.
pub struct TenantRepo<'a> {
    pub(super) db: &'a Database,
}

impl TenantRepo<'_> {
    /// Creates the tenant, or updates its name and main flow.
    #[tracing::instrument(name = "Upsert tenant", skip_all, fields(tenant_id = %tenant_id))]
    pub async fn upsert(
        &self,
        tenant_id: &TenantId,
        name: &str,
        main_flow_id: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let now = now_millis();
        sqlx::query(
            "insert into tenant (tenant_id, name, main_flow_id, created_at, updated_at)
             values ($1, $2, $3, $4, $4)
             on conflict (tenant_id) do update
               set name = excluded.name, main_flow_id = excluded.main_flow_id,
                   updated_at = excluded.updated_at",
        )
        .bind(tenant_id.as_str())
        .bind(name)
        .bind(main_flow_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to upsert tenant")?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant, or `None` when it does not exist.
    pub async fn get(&self, tenant_id: &TenantId) -> anyhow::Result<Option<Tenant>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query("select name, main_flow_id, status from tenant where tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("Failed to read tenant")?;
        tx.commit().await?;
        Ok(row.map(|row| Tenant {
            tenant_id: tenant_id.clone(),
            name: row.get(0),
            main_flow_id: row.get(1),
            // `suspended` and `erased` alike: only an active tenant is served.
            suspended: row.get::<String, _>(2) != "active",
        }))
    }

    /// Creates a tenant; [`Created::Exists`] (and no change) when the id is taken. The audit
    /// event is recorded in the same transaction.
    #[tracing::instrument(name = "Create tenant", skip_all, fields(tenant_id = %tenant_id))]
    pub async fn create(
        &self,
        tenant_id: &TenantId,
        name: &str,
        main_flow_id: &str,
        audit: &Audit<'_>,
    ) -> anyhow::Result<Created> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let now = now_millis();
        let done = sqlx::query(
            "insert into tenant (tenant_id, name, main_flow_id, created_at, updated_at)
             values ($1, $2, $3, $4, $4) on conflict (tenant_id) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(name)
        .bind(main_flow_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to create tenant")?;
        if done.rows_affected() == 0 {
            return Ok(Created::Exists);
        }
        audit.record_in(&mut tx, tenant_id).await?;
        let record = record_in(&mut tx, tenant_id)
            .await?
            .context("created tenant vanished")?;
        tx.commit().await?;
        Ok(Created::Now(record))
    }

    /// The tenant with its administrative fields.
    pub async fn record(&self, tenant_id: &TenantId) -> anyhow::Result<Option<TenantRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let record = record_in(&mut tx, tenant_id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Every tenant, by id, at most `limit` after `after` (platform administration: on
    /// PostgreSQL this reads through the `platform_admin` policy).
    pub async fn list_all(&self, after: &str, limit: i64) -> anyhow::Result<Vec<TenantRecord>> {
        let mut tx = self.db.begin_platform().await?;
        let rows = sqlx::query(&format!(
            "select {RECORD_COLUMNS} from tenant where tenant_id > $1 order by tenant_id limit $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list tenants")?;
        tx.commit().await?;
        rows.iter().map(record_of).collect()
    }

    /// Changes the name and/or main flow; `None` when the tenant does not exist.
    pub async fn update(
        &self,
        tenant_id: &TenantId,
        name: Option<&str>,
        main_flow_id: Option<&str>,
        audit: &Audit<'_>,
    ) -> anyhow::Result<Option<TenantRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done = sqlx::query(
            "update tenant set name = coalesce($1, name), main_flow_id = coalesce($2, main_flow_id),
                    updated_at = $3 where tenant_id = $4",
        )
        .bind(name)
        .bind(main_flow_id)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await
        .context("Failed to update tenant")?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        audit.record_in(&mut tx, tenant_id).await?;
        let record = record_in(&mut tx, tenant_id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Suspends (`true`) or resumes the tenant. `None` when it does not exist; the record and
    /// whether the status changed otherwise (no event when it did not).
    pub async fn set_suspended(
        &self,
        tenant_id: &TenantId,
        suspended: bool,
        audit: &Audit<'_>,
    ) -> anyhow::Result<Option<(TenantRecord, bool)>> {
        let (from, to) = if suspended {
            ("active", "suspended")
        } else {
            ("suspended", "active")
        };
        self.move_status(tenant_id, from, to, audit).await
    }

    /// Marks a suspended tenant erased (for good: it cannot be resumed), with its audit event.
    /// `None` when it does not exist; the record and whether it changed otherwise (an active
    /// tenant is not changed: it must be suspended first).
    pub async fn mark_erased(
        &self,
        tenant_id: &TenantId,
        audit: &Audit<'_>,
    ) -> anyhow::Result<Option<(TenantRecord, bool)>> {
        self.move_status(tenant_id, "suspended", "erased", audit)
            .await
    }

    /// Moves the status `from` → `to` (compare-and-set) with its audit event; `suspended_at` is
    /// set on suspension, cleared on resumption and kept on erasure.
    async fn move_status(
        &self,
        tenant_id: &TenantId,
        from: &str,
        to: &str,
        audit: &Audit<'_>,
    ) -> anyhow::Result<Option<(TenantRecord, bool)>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let now = now_millis();
        let done = sqlx::query(
            "update tenant set status = $1, updated_at = $2,
                    suspended_at = case $1 when 'suspended' then $2 when 'active' then null
                                   else suspended_at end
             where tenant_id = $3 and status = $4",
        )
        .bind(to)
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(from)
        .execute(&mut *tx)
        .await
        .context("Failed to change the tenant's status")?;
        let changed = done.rows_affected() == 1;
        if changed {
            audit.record_in(&mut tx, tenant_id).await?;
        }
        let record = record_in(&mut tx, tenant_id).await?;
        tx.commit().await?;
        Ok(record.map(|r| (r, changed)))
    }

    /// Browser origins allowed to call the tenant's webchat endpoints (empty: any).
    pub async fn cors_origins(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<String>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let raw: Option<String> =
            sqlx::query_scalar("select cors_origins from tenant where tenant_id = $1")
                .bind(tenant_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to read cors origins")?;
        tx.commit().await?;
        Ok(raw
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .context("stored cors_origins is not a JSON array")?
            .unwrap_or_default())
    }

    /// Replaces the tenant's settings that are stored on the tenant row (`None`: unchanged),
    /// with the audit event, in one transaction.
    pub async fn set_settings(
        &self,
        tenant_id: &TenantId,
        change: &SettingsChange<'_>,
        audit: &Audit<'_>,
    ) -> anyhow::Result<bool> {
        // One settings change at a time per tenant: the check below reads, then the update
        // writes.
        let mut tx = self.db.begin_serialised(tenant_id, "settings").await?;
        if let Some(was) = change.payment_was
            && super::payments::settings_in(&mut tx, tenant_id)
                .await?
                .as_ref()
                != Some(was)
        {
            return Ok(false);
        }
        let json = |v: Option<&[String]>| v.map(serde_json::to_string).transpose();
        sqlx::query(
            "update tenant set allowed_http_hosts = coalesce($1, allowed_http_hosts),
                    cors_origins = coalesce($2, cors_origins),
                    payment_settings = coalesce($3, payment_settings),
                    updated_at = $4
             where tenant_id = $5",
        )
        .bind(json(change.allowed_http_hosts)?)
        .bind(json(change.cors_origins)?)
        .bind(change.payment.map(serde_json::to_string).transpose()?)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await
        .context("Failed to write tenant settings")?;
        audit.record_in(&mut tx, tenant_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every flow of the tenant with its published versions.
    pub async fn flows(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<FlowVersions>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select flow_id, version, published_at, published_by from flow_version
             where tenant_id = $1 order by flow_id, version",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list flows")?;
        tx.commit().await?;
        let mut flows: Vec<FlowVersions> = Vec::new();
        for row in rows {
            let flow_id: String = row.get(0);
            let version: i64 = row.get(1);
            let info = FlowVersionInfo {
                version: u32::try_from(version).context("stored flow version")?,
                published_at: row.get(2),
                published_by: row.get(3),
            };
            match flows.last_mut() {
                Some(last) if last.flow_id == flow_id => last.versions.push(info),
                _ => flows.push(FlowVersions {
                    flow_id,
                    versions: vec![info],
                }),
            }
        }
        Ok(flows)
    }

    /// Records that a suspended tenant's inbound message was answered but not processed;
    /// whether it was new.
    pub async fn record_suppressed(
        &self,
        tenant_id: &TenantId,
        id: &str,
        strategy: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done = sqlx::query(
            "insert into suppressed_inbound (tenant_id, id, strategy, received_at)
             values ($1, $2, $3, $4) on conflict (tenant_id, id) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(id)
        .bind(strategy)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to record a suppressed inbound message")?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many inbound messages of the tenant were suppressed while it was suspended.
    pub async fn suppressed_count(&self, tenant_id: &TenantId) -> anyhow::Result<i64> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let count =
            sqlx::query_scalar("select count(*) from suppressed_inbound where tenant_id = $1")
                .bind(tenant_id.as_str())
                .fetch_one(&mut *tx)
                .await
                .context("Failed to count suppressed inbound messages")?;
        tx.commit().await?;
        Ok(count)
    }

    /// Publishes `flow` as the next version of its flow id and returns that version. The stored
    /// definition carries the assigned version.
    #[tracing::instrument(name = "Publish flow", skip_all, fields(tenant_id = %tenant_id, flow_id = %flow.id))]
    pub async fn publish_flow(
        &self,
        tenant_id: &TenantId,
        flow: &FlowGraph,
    ) -> anyhow::Result<u32> {
        self.publish_flow_as(tenant_id, flow, None).await
    }

    /// [`Self::publish_flow`], recording who published the version.
    pub async fn publish_flow_as(
        &self,
        tenant_id: &TenantId,
        flow: &FlowGraph,
        published_by: Option<&str>,
    ) -> anyhow::Result<u32> {
        let mut tx = self.db.begin_write_for(tenant_id).await?;
        // Publishes of one flow take turns (SQLite: the write lock of `BEGIN IMMEDIATE`;
        // PostgreSQL: a transaction lock on the flow), else two read the same max(version)
        // under READ COMMITTED and one fails on the duplicate key.
        self.db
            .serialise(&mut tx, &format!("flow_version/{tenant_id}/{}", flow.id))
            .await?;
        let current: Option<i64> = sqlx::query_scalar(
            "select max(version) from flow_version where tenant_id = $1 and flow_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(&flow.id)
        .fetch_one(&mut *tx)
        .await?;
        let version = current.unwrap_or(0) + 1;
        let mut flow = flow.clone();
        flow.version = u32::try_from(version).context("flow version overflow")?;
        sqlx::query(
            "insert into flow_version
                 (tenant_id, flow_id, version, definition, published_at, published_by)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant_id.as_str())
        .bind(&flow.id)
        .bind(version)
        .bind(serde_json::to_string(&flow)?)
        .bind(now_millis())
        .bind(published_by)
        .execute(&mut *tx)
        .await
        .context("Failed to publish flow")?;
        tx.commit().await?;
        Ok(flow.version)
    }

    /// The latest published version of the tenant's main flow.
    pub async fn current_flow(&self, tenant: &Tenant) -> anyhow::Result<Option<FlowGraph>> {
        self.latest_flow(&tenant.tenant_id, &tenant.main_flow_id)
            .await
    }

    /// The latest published version of the tenant's flow `flow_id`.
    pub async fn latest_flow(
        &self,
        tenant_id: &TenantId,
        flow_id: &str,
    ) -> anyhow::Result<Option<FlowGraph>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let definition: Option<String> = sqlx::query_scalar(
            "select definition from flow_version where tenant_id = $1 and flow_id = $2
             order by version desc limit 1",
        )
        .bind(tenant_id.as_str())
        .bind(flow_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read the current flow")?;
        tx.commit().await?;
        definition
            .map(|d| serde_json::from_str(&d).context("stored flow definition is invalid"))
            .transpose()
    }

    /// Hosts the tenant's `http_request` commands may call (exact host names, or `*.domain`).
    pub async fn allowed_http_hosts(&self, tenant_id: &TenantId) -> anyhow::Result<Vec<String>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let raw: Option<String> =
            sqlx::query_scalar("select allowed_http_hosts from tenant where tenant_id = $1")
                .bind(tenant_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to read allowed hosts")?;
        tx.commit().await?;
        Ok(raw
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .context("stored allowed_http_hosts is not a JSON array")?
            .unwrap_or_default())
    }

    /// Replaces the hosts the tenant's `http_request` commands may call.
    pub async fn set_allowed_http_hosts(
        &self,
        tenant_id: &TenantId,
        hosts: &[String],
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update tenant set allowed_http_hosts = $1, updated_at = $2 where tenant_id = $3",
        )
        .bind(serde_json::to_string(hosts)?)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await
        .context("Failed to set allowed hosts")?;
        tx.commit().await?;
        Ok(())
    }

    /// Saves `definition` as the draft of `flow_id`, replacing the previous one.
    pub async fn save_draft(
        &self,
        tenant_id: &TenantId,
        flow_id: &str,
        definition: &serde_json::Value,
        saved_by: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "insert into flow_draft (tenant_id, flow_id, definition, saved_by, saved_at)
             values ($1, $2, $3, $4, $5)
             on conflict (tenant_id, flow_id) do update
             set definition = excluded.definition, saved_by = excluded.saved_by,
                 saved_at = excluded.saved_at",
        )
        .bind(tenant_id.as_str())
        .bind(flow_id)
        .bind(definition.to_string())
        .bind(saved_by)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to save the flow draft")?;
        tx.commit().await?;
        Ok(())
    }

    /// The draft of `flow_id`, if one is saved.
    pub async fn draft(
        &self,
        tenant_id: &TenantId,
        flow_id: &str,
    ) -> anyhow::Result<Option<FlowDraft>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(
            "select definition, saved_by, saved_at from flow_draft
             where tenant_id = $1 and flow_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(flow_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read the flow draft")?;
        tx.commit().await?;
        row.map(|r| {
            let definition: String = r.get(0);
            Ok(FlowDraft {
                flow_id: flow_id.to_owned(),
                definition: serde_json::from_str(&definition).context("stored flow draft")?,
                saved_by: r.get(1),
                saved_at: r.get(2),
            })
        })
        .transpose()
    }

    /// Deletes the draft of `flow_id`; `false` when there was none.
    pub async fn delete_draft(&self, tenant_id: &TenantId, flow_id: &str) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done = sqlx::query("delete from flow_draft where tenant_id = $1 and flow_id = $2")
            .bind(tenant_id.as_str())
            .bind(flow_id)
            .execute(&mut *tx)
            .await
            .context("Failed to delete the flow draft")?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// A published version of a flow.
    pub async fn flow_version(
        &self,
        tenant_id: &TenantId,
        flow_id: &str,
        version: u32,
    ) -> anyhow::Result<Option<FlowGraph>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let definition: Option<String> = sqlx::query_scalar(
            "select definition from flow_version where tenant_id = $1 and flow_id = $2 and version = $3",
        )
        .bind(tenant_id.as_str())
        .bind(flow_id)
        .bind(i64::from(version))
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read flow version")?;
        tx.commit().await?;
        definition
            .map(|d| serde_json::from_str(&d).context("stored flow definition is invalid"))
            .transpose()
    }
}
