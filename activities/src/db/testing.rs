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
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("ZENGINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Where a test database lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    /// PostgreSQL as the owner (row-level security does not apply).
    Postgres,
    /// PostgreSQL as the restricted `zengine_app` role: row-level security applies.
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
                    url,
                    _dir: None,
                })
            }
            TestBackend::PostgresRls => {
                let url = create_postgres_database().await?;
                let owner = Database::connect(&url, 1).await?;
                owner.migrate().await?;
                owner.close().await;
                let db = Database::connect_as(&url, 5, Some("zengine_app")).await?;
                Ok(Self {
                    db,
                    url,
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

/// Creates `zengine_test_<uuid>` on the test server and returns its URL.
pub async fn create_postgres_database() -> anyhow::Result<String> {
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
    sqlx::query(&format!("create database \"{name}\""))
        .execute(&mut admin)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    Ok(format!("{base}/{name}"))
}
