//! Tenants and their published flows.

use anyhow::Context;
use sqlx::Row;
use zengine_domain::TenantId;
use zengine_domain::flow::FlowGraph;

use super::{Database, now_millis};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub name: String,
    pub main_flow_id: String,
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
        let row = sqlx::query("select name, main_flow_id from tenant where tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("Failed to read tenant")?;
        tx.commit().await?;
        Ok(row.map(|row| Tenant {
            tenant_id: tenant_id.clone(),
            name: row.get(0),
            main_flow_id: row.get(1),
        }))
    }

    /// Publishes `flow` as the next version of its flow id and returns that version. The stored
    /// definition carries the assigned version.
    #[tracing::instrument(name = "Publish flow", skip_all, fields(tenant_id = %tenant_id, flow_id = %flow.id))]
    pub async fn publish_flow(
        &self,
        tenant_id: &TenantId,
        flow: &FlowGraph,
    ) -> anyhow::Result<u32> {
        let mut tx = self.db.begin_for(tenant_id).await?;
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
            "insert into flow_version (tenant_id, flow_id, version, definition, published_at)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(tenant_id.as_str())
        .bind(&flow.id)
        .bind(version)
        .bind(serde_json::to_string(&flow)?)
        .bind(now_millis())
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
