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

/// A certificate authority made with `openssl` for one test, in a folder of the test's: the CA
/// is `<dir>/<name>.pem`, each certificate it issues `<dir>/<cert>.crt` with `<dir>/<cert>.key`
/// (P-256 keys, valid two days).
pub struct TestCa {
    dir: std::path::PathBuf,
    name: String,
}

impl TestCa {
    pub fn new(dir: &std::path::Path, name: &str) -> anyhow::Result<Self> {
        let ca = Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        let (pem, subject) = (
            ca.file(&format!("{name}.pem")),
            format!("/CN=zengine {name}"),
        );
        ca.new_key(
            &format!("{name}.key"),
            &["-x509", "-out", &pem, "-days", "2", "-subj", &subject],
        )?;
        Ok(ca)
    }

    /// The CA's certificate (PEM).
    pub fn pem(&self) -> std::path::PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// Issues `<cert>.crt` / `<cert>.key` with common name `cn`, and `san` as subject alternative
    /// names (`IP:127.0.0.1,DNS:localhost`) for a server; `None` for a client certificate.
    /// Returns the certificate's and the key's paths.
    pub fn issue(
        &self,
        cert: &str,
        cn: &str,
        san: Option<&str>,
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        self.issue_for_days(cert, cn, san, 2)
    }

    /// [`TestCa::issue`] valid `days` days from now; a negative number gives a certificate that
    /// expired that many days ago.
    pub fn issue_for_days(
        &self,
        cert: &str,
        cn: &str,
        san: Option<&str>,
        days: i32,
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let (csr, key, crt) = (
            self.file(&format!("{cert}.csr")),
            format!("{cert}.key"),
            self.file(&format!("{cert}.crt")),
        );
        self.new_key(&key, &["-out", &csr, "-subj", &format!("/CN={cn}")])?;
        let ext = self.file(&format!("{cert}.ext"));
        let usage = match san {
            Some(san) => format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
            None => "extendedKeyUsage=clientAuth\n".to_owned(),
        };
        std::fs::write(&ext, usage)?;
        let (ca, ca_key) = (
            self.pem().display().to_string(),
            self.file(&format!("{}.key", self.name)),
        );
        let sign = ["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key];
        let days = days.to_string();
        let out = [
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            &days,
            "-extfile",
            &ext,
        ];
        run("openssl", &[&sign[..], &out[..]].concat(), None)?;
        Ok((self.dir.join(format!("{cert}.crt")), self.dir.join(key)))
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `openssl req` with a new P-256 key written to `key`, then `rest`.
    fn new_key(&self, key: &str, rest: &[&str]) -> anyhow::Result<()> {
        let key = self.file(key);
        let mut args = vec!["req", "-newkey", "ec", "-pkeyopt"];
        args.extend(["ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &key]);
        args.extend_from_slice(rest);
        run("openssl", &args, None)
    }
}

/// A PostgreSQL server of its own that accepts only TLS connections (`hostssl`; plain TCP is
/// rejected), with a certificate for `127.0.0.1` / `localhost` signed by a CA made for it:
/// `initdb` in a temporary folder, stopped on drop. Run as the `postgres` system user when the
/// tests run as root (PostgreSQL refuses to run as root).
pub struct TlsPostgres {
    pub port: u16,
    /// PEM of the CA that signed the server's certificate.
    pub ca: std::path::PathBuf,
    /// PEM of another CA, which did not.
    pub wrong_ca: std::path::PathBuf,
    /// The CA, which also signs client certificates: role `certuser` must log in with one
    /// (`cert` authentication, common name = role), every other role is trusted.
    issuer: TestCa,
    data: std::path::PathBuf,
    pg_ctl: String,
    /// The system user the server runs as (`postgres` when the tests run as root).
    user: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// Generates the CAs and the server certificate (`openssl`), creates and starts the server.
    pub fn start() -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().to_owned();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        let ca = TestCa::new(&path, "ca")?;
        let wrong_ca = TestCa::new(&path, "wrong-ca")?;
        let (crt, key) = ca.issue("server", "127.0.0.1", Some("IP:127.0.0.1,DNS:localhost"))?;
        let user = is_root().then_some("postgres");
        if user.is_some() {
            run(
                "chown",
                &["-R", "postgres", &path.display().to_string()],
                None,
            )?;
        }
        let bin = postgres_bin_dir()?;
        let data = path.join("data");
        let pg_ctl = bin.join("pg_ctl").display().to_string();
        let data_dir = data.display().to_string();
        let initdb = bin.join("initdb").display().to_string();
        let initdb_args = ["-D", &data_dir, "-U", "postgres", "--auth=trust"];
        run(&initdb, &initdb_args, user)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        std::io::Write::write_all(
            &mut conf,
            format!(
                "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n\
                 fsync = off\n",
                path.display(),
                crt.display(),
                key.display(),
                ca.pem().display(),
            )
            .as_bytes(),
        )?;
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )?;
        let log = path.join("server.log").display().to_string();
        run(&pg_ctl, &["-D", &data_dir, "-l", &log, "-w", "start"], user)?;
        Ok(Self {
            port,
            ca: ca.pem(),
            wrong_ca: wrong_ca.pem(),
            issuer: ca,
            data,
            pg_ctl,
            user,
            _dir: dir,
        })
    }

    /// A client certificate for role `cn` signed by the server's CA, valid `days` days from
    /// now (negative: expired that many days ago). Returns the certificate's and key's paths.
    pub fn client_cert(
        &self,
        name: &str,
        cn: &str,
        days: i32,
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        self.issuer.issue_for_days(name, cn, None, days)
    }

    /// A URL of the server's `postgres` database with these query parameters.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let stop = ["-D", &data, "-m", "immediate", "stop"];
        let _ = run(&self.pg_ctl, &stop, self.user);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The folder of `initdb` and `pg_ctl` (Debian keeps them out of `PATH`).
fn postgres_bin_dir() -> anyhow::Result<std::path::PathBuf> {
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL's server binaries (initdb) are not installed")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().context("no initdb under /usr/lib/postgresql")
}

/// Runs a command (as `user` through `runuser` when given), failing with its output.
fn run(program: &str, args: &[&str], user: Option<&str>) -> anyhow::Result<()> {
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", user, "--", program]);
            cmd
        }
        None => std::process::Command::new(program),
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("Failed to run {program}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
