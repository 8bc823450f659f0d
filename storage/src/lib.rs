//! The domain database: one [`Database`] handle over SQLite (embedded default) or PostgreSQL
//! (production), migrations for both, and the repositories.
//!
//! Queries are written once in the SQL both backends accept (`$1` placeholders, `bigint`
//! epoch-millisecond timestamps) and run through sqlx's `Any` driver, so the repository test
//! suite runs unchanged against both backends.

mod api_keys;
pub mod assistance;
pub mod certificates;
mod channels;
mod chatwoot;
mod events;
mod idempotency;
mod orders;
mod payments;
mod reports;
mod retention;
mod routes;
pub mod secrets;
pub mod seed;
mod tenants;
#[cfg(feature = "test-support")]
pub mod testing;
mod tracking;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

pub use api_keys::{ApiKey, ApiKeyRepo, KEY_PREFIX, NewApiKey, Revoked, parse_key};
pub use assistance::{AssistanceError, AssistanceRepo};
pub use channels::{
    AccountTaken, ChannelAccount, ChannelHealth, ChannelRepo, ConnectParticipant, HealthChange,
    OutboundRecord,
};
pub use chatwoot::{ChatwootLink, ChatwootRepo, ChatwootSettings};
pub use events::{EventPage, EventRepo, NewEvent, StoredEvent};
pub use idempotency::{IdempotencyRecord, IdempotencyRepo, NewIdempotencyRecord};
pub use orders::{
    CreateOrderError, DeliveryWindow, NewOrder, Order, OrderContact, OrderFilter, OrderRepo,
};
pub use payments::{
    CloudOcrSettings, NotificationSettings, Payment, PaymentRepo, PaymentSettings, ReviewError,
    Settlement,
};
pub use reports::{Fact, REPORTS, ReportRepo, fact_of};
pub use retention::{PurgeCounts, RetentionRepo, UNLINKED_MEDIA_TTL_MS};
pub use routes::{RoutePlan, RouteRepo};
pub use tenants::{
    Audit, Created, FlowDraft, FlowVersionInfo, FlowVersions, SettingsChange, Tenant, TenantRecord,
    TenantRepo,
};
pub use tracking::{Recorded, TrackingEvent, TrackingRepo};

/// Domain database configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path/file.db` (embedded default) or `postgres://user@host/db`: the login of
    /// `zengine api` and `zengine worker`. On PostgreSQL in production a role that is only a
    /// member of `zengine_app`, never the owner (`docs/security.md`, "Database roles"). May hold a
    /// password, so it is a secret: never logged, `[REDACTED]` in debug output. The
    /// `DATABASE_URL` environment variable sets it too.
    pub url: secrecy::SecretString,
    /// The login that owns the schema and applies migrations (`zengine migrate`, and
    /// `migrate_on_start`). Empty: `url`. A secret, like `url`.
    pub migration_url: secrecy::SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// Apply pending migrations when a process starts (else only `zengine migrate` does).
    pub migrate_on_start: bool,
    /// PostgreSQL: let `zengine api` / `zengine worker` log in as a role that row-level
    /// security does not confine (a superuser, a `BYPASSRLS` role, the tables' owner, or a role
    /// that can `SET ROLE` to one). Off: they refuse to start so; see `docs/security.md`.
    pub allow_rls_bypass: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/zengine.db".into(),
            migration_url: String::new().into(),
            max_connections: 10,
            migrate_on_start: true,
            allow_rls_bypass: false,
        }
    }
}

impl DatabaseSettings {
    /// Connects as `url` (after migrating as `migration_url`, when configured).
    pub async fn connect(&self) -> anyhow::Result<Database> {
        use secrecy::ExposeSecret;
        if self.migrate_on_start {
            self.migrate().await?;
        }
        Database::connect(self.url.expose_secret(), self.max_connections)
            .await
            .context("database.url")
    }

    /// Applies pending migrations as the schema's owner (`migration_url`, else `url`).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        let (setting, url) = match self.migration_url.expose_secret() {
            "" => ("database.url", self.url.expose_secret()),
            owner => ("database.migration_url", owner),
        };
        let owner = Database::connect(url, 1).await.context(setting)?;
        let migrated = owner.migrate().await;
        owner.close().await;
        migrated
    }
}

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl FromStr for Backend {
    type Err = anyhow::Error;
    /// Infers the backend from a connection URL.
    fn from_str(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL scheme (expected sqlite: or postgres:)")
        }
    }
}

/// A pooled connection to the domain database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Database {
    /// Connects to `url` (`sqlite://path/to/file.db` or `postgres://…`). A SQLite file and its
    /// folder are created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        install_default_drivers();
        let backend: Backend = url.parse()?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => {
                crate::certificates::check_postgres_url(url)?;
                url.to_owned()
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; busy_timeout turns lock
                        // contention into a short wait instead of an error.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA busy_timeout = 5000",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA synchronous = NORMAL",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("Failed to connect to the {backend:?} database"))?;
        Ok(Self { pool, backend })
    }

    /// A transaction scoped to `tenant`: on PostgreSQL it sets `app.tenant_id`, which the
    /// row-level-security policies compare every row against. Every repository query runs in one.
    /// A transaction that reads and then writes takes [`Database::begin_write_for`] instead.
    pub async fn begin_for(
        &self,
        tenant: &zengine_domain::TenantId,
    ) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.begin_with(&[("app.tenant_id", tenant.as_str())]).await
    }

    /// A transaction that, on PostgreSQL, first sets each `(setting, value)` for itself only
    /// (`set_config(…, true)`): the context the row-level-security policies read.
    pub(crate) async fn begin_with(
        &self,
        context: &[(&str, &str)],
    ) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("Failed to begin a transaction")?;
        if self.backend == Backend::Postgres && !context.is_empty() {
            // One round trip: `select set_config($1, $2, true), set_config($3, $4, true), …`.
            let calls: Vec<String> = (0..context.len())
                .map(|i| format!("set_config(${}, ${}, true)", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!("select {}", calls.join(", "));
            let mut query = sqlx::query(&sql);
            for (setting, value) in context {
                query = query.bind(*setting).bind(*value);
            }
            query
                .execute(&mut *tx)
                .await
                .context("Failed to set the transaction's tenant context")?;
        }
        Ok(tx)
    }

    /// Like [`Database::begin_for`], for a transaction that reads and then writes: on SQLite it
    /// takes the write lock at `BEGIN` (`BEGIN IMMEDIATE`), so it waits (`busy_timeout`) for
    /// another writer instead of failing with SQLITE_BUSY when it upgrades a read snapshot that
    /// another writer has moved past.
    pub async fn begin_write_for(
        &self,
        tenant: &zengine_domain::TenantId,
    ) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        if self.backend == Backend::Sqlite {
            return self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("Failed to begin a write transaction");
        }
        self.begin_for(tenant).await
    }

    /// [`Database::begin_write_for`] serialised with every other transaction that names the same
    /// `key` of `tenant` (until it ends): a read-then-write on PostgreSQL, where READ COMMITTED
    /// lets two such transactions both pass the same check. SQLite serialises writers already.
    pub async fn begin_serialised(
        &self,
        tenant: &zengine_domain::TenantId,
        key: &str,
    ) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.begin_write_for(tenant).await?;
        self.serialise(&mut tx, &format!("{tenant}/{key}")).await?;
        Ok(tx)
    }

    /// Holds `key` for the rest of the transaction `conn` runs (PostgreSQL: a transaction-scoped
    /// advisory lock on its hash; SQLite: nothing, its writers are serialised).
    pub(crate) async fn serialise(
        &self,
        conn: &mut sqlx::AnyConnection,
        key: &str,
    ) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))::text")
                .bind(key)
                .fetch_one(conn)
                .await
                .with_context(|| format!("Failed to lock `{key}`"))?;
        }
        Ok(())
    }

    /// A transaction of the platform administrator: on PostgreSQL it may read every tenant row
    /// and `channel_account` (policies `platform_admin` of migrations 0015 and 0020), write
    /// nothing, and see no other tenant table. The platform-admin endpoints, retention and the
    /// channel health schedule use it.
    pub async fn begin_platform(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.begin_with(&[("app.platform_admin", "on")]).await
    }

    /// PostgreSQL: fails when row-level security would not confine the login role — it is a
    /// superuser, has `BYPASSRLS` or owns the tenant tables, or can `SET ROLE` to a role that
    /// does — naming the role and why. (A `SET ROLE` to a restricted role would not do: any SQL
    /// the application runs could `RESET ROLE`.) SQLite: nothing to check.
    pub async fn check_row_level_security(&self) -> anyhow::Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let rows = sqlx::query(
            "select session_user::text, r.rolname::text, r.rolsuper, r.rolbypassrls,
                    exists (select 1 from pg_tables t
                             where t.schemaname = 'public' and t.tablename = 'tenant'
                               and t.tableowner = r.rolname)
               from pg_roles r
              where pg_has_role(session_user, r.oid, 'MEMBER')
              order by r.rolname = session_user desc, r.rolname",
        )
        .fetch_all(&self.pool)
        .await
        .context("Failed to read the database roles")?;
        for row in &rows {
            let (login, role): (String, String) = (row.get(0), row.get(1));
            let why = if row.get::<bool, _>(2) {
                "is a superuser"
            } else if row.get::<bool, _>(3) {
                "has BYPASSRLS"
            } else if row.get::<bool, _>(4) {
                "owns the tenant tables"
            } else {
                continue;
            };
            let who = if login == role {
                format!("the database login `{login}` {why}")
            } else {
                format!("the database login `{login}` can become `{role}`, which {why}")
            };
            anyhow::bail!(
                "{who}, so row-level security does not confine it: log in (database.url) as a \
                 role that is only a member of zengine_app and migrate as the owner \
                 (database.migration_url), see docs/security.md \"Database roles\"; \
                 database.allow_rls_bypass = true accepts it"
            );
        }
        Ok(())
    }

    /// Applies pending migrations (forward only).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&self.pool)
            .await
            .context("Failed to migrate the database")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn tenants(&self) -> TenantRepo<'_> {
        TenantRepo { db: self }
    }

    pub fn idempotency(&self) -> IdempotencyRepo<'_> {
        IdempotencyRepo { db: self }
    }

    pub fn events(&self) -> EventRepo<'_> {
        EventRepo { db: self }
    }

    pub fn orders(&self) -> OrderRepo<'_> {
        OrderRepo { db: self }
    }

    pub fn channels(&self) -> ChannelRepo<'_> {
        ChannelRepo { db: self }
    }

    pub fn retention(&self) -> RetentionRepo<'_> {
        RetentionRepo { db: self }
    }

    pub fn payments(&self) -> PaymentRepo<'_> {
        PaymentRepo { db: self }
    }

    pub fn tracking(&self) -> TrackingRepo<'_> {
        TrackingRepo { db: self }
    }

    pub fn routes(&self) -> RouteRepo<'_> {
        RouteRepo { db: self }
    }

    pub fn assistance(&self) -> AssistanceRepo<'_> {
        AssistanceRepo { db: self }
    }

    pub fn reports(&self) -> ReportRepo<'_> {
        ReportRepo { db: self }
    }

    pub fn chatwoot(&self) -> ChatwootRepo<'_> {
        ChatwootRepo { db: self }
    }

    pub fn api_keys(&self) -> ApiKeyRepo<'_> {
        ApiKeyRepo { db: self }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` to a SQLite URL and creates the file's folder.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path != ":memory:"
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let mut query = query.to_owned();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{query}"))
}

/// Milliseconds since the Unix epoch, the timestamp format of every table.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_inferred_from_the_url() {
        assert_eq!("sqlite://x.db".parse::<Backend>().unwrap(), Backend::Sqlite);
        assert_eq!(
            "postgres://u@h/db".parse::<Backend>().unwrap(),
            Backend::Postgres
        );
        assert!("mysql://h/db".parse::<Backend>().is_err());
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = std::env::temp_dir().join(format!("zengine-url-{}", std::process::id()));
        let url = format!("sqlite://{}/z.db", dir.display());
        assert_eq!(
            sqlite_url(&url).unwrap(),
            format!("sqlite://{}/z.db?mode=rwc", dir.display())
        );
        assert!(dir.is_dir());
        assert_eq!(
            sqlite_url("sqlite::memory:?cache=shared").unwrap(),
            "sqlite://:memory:?cache=shared&mode=rwc"
        );
    }
}
