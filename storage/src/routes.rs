//! Route optimisation runs and driver assignments.

use anyhow::Context;
use serde_json::Value;
use sqlx::Row;
use zengine_domain::TenantId;

use super::{Database, now_millis};

/// A stored optimisation run.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    pub plan_id: String,
    pub status: String,
    pub request: Value,
    pub progress: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
}

pub struct RouteRepo<'a> {
    pub(super) db: &'a Database,
}

impl RouteRepo<'_> {
    pub async fn create(
        &self,
        tenant_id: &TenantId,
        plan_id: &str,
        request: &Value,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "insert into route_plan (tenant_id, plan_id, status, request, created_at, updated_at)
             values ($1, $2, 'RUNNING', $3, $4, $4)",
        )
        .bind(tenant_id.as_str())
        .bind(plan_id)
        .bind(request.to_string())
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to create route plan")?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get(
        &self,
        tenant_id: &TenantId,
        plan_id: &str,
    ) -> anyhow::Result<Option<RoutePlan>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(
            "select plan_id, status, request, progress, result, error, created_at from route_plan
             where tenant_id = $1 and plan_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(plan_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|row| -> anyhow::Result<RoutePlan> {
            let request: String = row.get(2);
            let progress: String = row.get(3);
            let result: Option<String> = row.get(4);
            Ok(RoutePlan {
                plan_id: row.get(0),
                status: row.get(1),
                request: serde_json::from_str(&request)?,
                progress: serde_json::from_str(&progress)?,
                result: result.map(|r| serde_json::from_str(&r)).transpose()?,
                error: row.get(5),
                created_at: row.get(6),
            })
        })
        .transpose()
    }

    pub async fn set_progress(
        &self,
        tenant_id: &TenantId,
        plan_id: &str,
        progress: &Value,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query("update route_plan set progress = $1, updated_at = $2 where tenant_id = $3 and plan_id = $4 and status = 'RUNNING'")
            .bind(progress.to_string())
            .bind(now_millis())
            .bind(tenant_id.as_str())
            .bind(plan_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the result and the per-driver assignments at once, as DONE (or CANCELLED when the
    /// search was stopped early and `result` is the best found). Idempotent: a plan that is no
    /// longer RUNNING is left as it is and `false` returned.
    pub async fn complete(
        &self,
        tenant_id: &TenantId,
        plan_id: &str,
        result: &Value,
        assignments: &[(String, Value, i64)],
        cancelled: bool,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let now = now_millis();
        let done = sqlx::query(
            "update route_plan set status = $5, result = $1, updated_at = $2
             where tenant_id = $3 and plan_id = $4 and status = 'RUNNING'",
        )
        .bind(result.to_string())
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(plan_id)
        .bind(if cancelled { "CANCELLED" } else { "DONE" })
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for (driver, stops, distance) in assignments {
            sqlx::query(
                "insert into route_assignment (tenant_id, plan_id, driver_id, stops, distance_m, created_at)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant_id.as_str())
            .bind(plan_id)
            .bind(driver)
            .bind(stops.to_string())
            .bind(*distance)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn fail(
        &self,
        tenant_id: &TenantId,
        plan_id: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query("update route_plan set status = 'FAILED', error = $1, updated_at = $2 where tenant_id = $3 and plan_id = $4 and status = 'RUNNING'")
            .bind(error)
            .bind(now_millis())
            .bind(tenant_id.as_str())
            .bind(plan_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A driver's routes, newest first: `(plan_id, stops, distance_m, created_at)`.
    pub async fn for_driver(
        &self,
        tenant_id: &TenantId,
        driver_id: &str,
    ) -> anyhow::Result<Vec<(String, Value, i64, i64)>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select plan_id, stops, distance_m, created_at from route_assignment
             where tenant_id = $1 and driver_id = $2 order by created_at desc, plan_id limit 50",
        )
        .bind(tenant_id.as_str())
        .bind(driver_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let stops: String = r.get(1);
                Ok((r.get(0), serde_json::from_str(&stops)?, r.get(2), r.get(3)))
            })
            .collect()
    }
}
