//! Fresh databases for tests (feature `test-support`).
//!
//! PostgreSQL tests use the server at `ZENGINE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and create a uniquely named database per call.
//! When that server cannot be reached the helper fails: a PostgreSQL test never silently passes.

use anyhow::Context;
use sqlx::Connection;

use super::{Backend, Database};

/// A migrated, empty database that lives as long as this value (SQLite files are removed on
/// drop; PostgreSQL databases are named `zengine_test_*` and dropped by [`TestDatabase::drop_db`]).
pub struct TestDatabase {
    pub db: Database,
    /// What `db` logged in as.
    pub url: String,
    /// The login that owns the schema and ran the migrations (for SQLite and
    /// [`TestBackend::Postgres`], `url`).
    pub owner_url: String,
    _dir: Option<tempfile::TempDir>,
}

/// The login that owns a [`TestBackend::PostgresRls`] database: not a superuser, as a
/// production migration role.
pub const TEST_OWNER_ROLE: &str = "zengine_test_owner";
/// The login of the application on a [`TestBackend::PostgresRls`] database: only a member of
/// `zengine_app`, as `zengine api` / `zengine worker` log in in production.
pub const TEST_RUNTIME_ROLE: &str = "zengine_test_runtime";

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("ZENGINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Where a test database lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    /// PostgreSQL as the superuser (row-level security does not apply).
    Postgres,
    /// PostgreSQL as production runs it: the schema belongs to [`TEST_OWNER_ROLE`] (not a
    /// superuser), the application logs in as [`TEST_RUNTIME_ROLE`]: row-level security applies
    /// to both.
    PostgresRls,
}

impl From<Backend> for TestBackend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Sqlite => TestBackend::Sqlite,
            Backend::Postgres => TestBackend::Postgres,
        }
    }
}

impl TestDatabase {
    /// A fresh, migrated database on `backend`.
    pub async fn new(backend: impl Into<TestBackend>) -> anyhow::Result<Self> {
        match backend.into() {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}/zengine.db", dir.path().display());
                let db = Database::connect(&url, 5).await?;
                db.migrate().await?;
                Ok(Self {
                    db,
                    owner_url: url.clone(),
                    url,
                    _dir: Some(dir),
                })
            }
            TestBackend::Postgres => {
                let url = create_postgres_database().await?;
                let db = Database::connect(&url, 5).await?;
                db.migrate().await?;
                Ok(Self {
                    db,
                    owner_url: url.clone(),
                    url,
                    _dir: None,
                })
            }
            TestBackend::PostgresRls => {
                ensure_test_roles().await?;
                let admin = create_postgres_database_owned_by(Some(TEST_OWNER_ROLE)).await?;
                let owner_url = with_user(&admin, TEST_OWNER_ROLE);
                let owner = Database::connect(&owner_url, 1).await?;
                owner.migrate().await?;
                owner.close().await;
                let url = with_user(&admin, TEST_RUNTIME_ROLE);
                let db = Database::connect(&url, 5).await?;
                Ok(Self {
                    db,
                    url,
                    owner_url,
                    _dir: None,
                })
            }
        }
    }

    /// Closes the pool and drops a PostgreSQL test database.
    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.db.close().await;
        if self.db.backend() == Backend::Postgres {
            let name = self.url.rsplit('/').next().unwrap_or_default().to_owned();
            let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
            sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                .execute(&mut admin)
                .await?;
        }
        Ok(())
    }
}

/// Creates the cluster-wide roles of [`TestBackend::PostgresRls`] when missing, as a database
/// administrator would before the first deployment: `zengine_app` (the group the policies and
/// grants name), [`TEST_OWNER_ROLE`] and [`TEST_RUNTIME_ROLE`] (a member of `zengine_app`).
/// Safe to call from tests running at once.
pub async fn ensure_test_roles() -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
    for create in [
        "create role zengine_app nologin".to_owned(),
        format!("create role {TEST_OWNER_ROLE} login"),
        format!("create role {TEST_RUNTIME_ROLE} login in role zengine_app"),
    ] {
        // Roles are cluster-wide: another test may create the same one at the same moment.
        sqlx::query(&format!(
            "do $$ begin {create}; \
             exception when duplicate_object or unique_violation then null; end $$"
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("Failed to {create}"))?;
    }
    Ok(())
}

/// `url` with its user replaced by `user` (and no password).
pub fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

/// Creates `zengine_test_<uuid>` on the test server and returns its URL.
pub async fn create_postgres_database() -> anyhow::Result<String> {
    create_postgres_database_owned_by(None).await
}

/// Creates `zengine_test_<uuid>`, owned by `owner` (else the admin login), and returns its URL
/// (as the admin login).
pub async fn create_postgres_database_owned_by(owner: Option<&str>) -> anyhow::Result<String> {
    let admin_url = postgres_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .with_context(|| {
            format!(
                "PostgreSQL tests need a server at {admin_url} (set ZENGINE_TEST_POSTGRES_URL); \
             it could not be reached"
            )
        })?;
    let name = format!("zengine_test_{}", uuid::Uuid::new_v4().simple());
    let owner = owner.map(|o| format!(" owner {o}")).unwrap_or_default();
    sqlx::query(&format!("create database \"{name}\"{owner}"))
        .execute(&mut admin)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    Ok(format!("{base}/{name}"))
}
