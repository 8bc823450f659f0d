//! Secret references: settings never hold secret values, only where to find them.
//!
//! Platform references (configuration files, and tenant settings written by a platform
//! administrator):
//! - `env:NAME`: the environment variable `NAME`;
//! - `file:/path`: the contents of a file (trailing newline trimmed), e.g. a Kubernetes secret
//!   volume.
//!
//! Tenant references (what a tenant administrator may write, `docs/security.md`):
//! - `secret:NAME`: the file `NAME` in the tenant's own folder of the platform's tenant secret
//!   store, `<secrets.tenant_dir>/<tenant>/NAME` (one Kubernetes secret volume per tenant, say).
//!   A tenant can name nothing outside its folder: `NAME` is one path segment of
//!   `[A-Za-z0-9_.-]`, never `.` or `..`, and the tenant is the account's, not the reference's.
//!
//! A tenant's settings are resolved with [`resolve_for`] (its `secret:` references in its own
//! folder); process configuration with [`resolve`], which refuses `secret:`.
//!
//! A missing secret fails fast with an error that names the *reference*, never a value; callers
//! turn it into a non-retryable failure (retrying does not make a secret appear).

use std::path::PathBuf;
use std::sync::RwLock;

use secrecy::SecretString;
use zengine_domain::TenantId;

/// Where tenant secret folders are when nothing is configured.
pub const DEFAULT_TENANT_DIR: &str = "/run/secrets/zengine-tenants";

static TENANT_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the root of the tenant secret store (`secrets.tenant_dir`); processes call it once at
/// start-up, before resolving any tenant reference.
pub fn set_tenant_dir(dir: impl Into<PathBuf>) {
    *TENANT_DIR.write().unwrap_or_else(|e| e.into_inner()) = Some(dir.into());
}

/// The root of the tenant secret store.
pub fn tenant_dir() -> PathBuf {
    TENANT_DIR
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TENANT_DIR))
}

/// Whether `name` may follow `secret:`: one path segment of `[A-Za-z0-9_.-]`, 1 to 128 bytes,
/// not `.` or `..`.
pub fn valid_tenant_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// What kind of reference `value` is, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    /// `env:` or `file:`: only the platform may write these.
    Platform,
    /// `secret:NAME`: the tenant's own store.
    Tenant,
}

/// The kind of a well-formed reference; `None` for anything else.
pub fn reference_kind(value: &str) -> Option<ReferenceKind> {
    match value.split_once(':') {
        Some(("env" | "file", rest)) if !rest.is_empty() => Some(ReferenceKind::Platform),
        Some(("secret", name)) if valid_tenant_secret_name(name) => Some(ReferenceKind::Tenant),
        _ => None,
    }
}

/// The platform reference that a tenant's `reference` stands for: `secret:NAME` becomes the
/// file in `tenant`'s folder; `env:` and `file:` (written by a platform administrator) stay.
pub fn scoped(tenant: &TenantId, reference: &str) -> Result<String, SecretError> {
    match reference.split_once(':') {
        Some(("secret", name)) if valid_tenant_secret_name(name) => Ok(format!(
            "file:{}",
            tenant_dir().join(tenant.as_str()).join(name).display()
        )),
        Some(("secret", _)) => Err(SecretError::BadReference(reference.to_owned())),
        _ => Ok(reference.to_owned()),
    }
}

/// Resolves a reference found in `tenant`'s settings (see the module docs).
pub fn resolve_for(tenant: &TenantId, reference: &str) -> Result<SecretString, SecretError> {
    let scoped = scoped(tenant, reference)?;
    // Errors name the tenant's reference, not the platform path behind it.
    resolve(&scoped).map_err(|e| match e {
        SecretError::Missing(_) => SecretError::Missing(reference.to_owned()),
        SecretError::BadReference(_) => SecretError::BadReference(reference.to_owned()),
    })
}

/// Writes `value` as `tenant`'s secret `name` unless the file exists (then it is kept: the
/// platform's operators may have provisioned it, and replacing a payload key would erase).
/// Created owner-only (folder 0700, file 0600) and never over an existing file, so two
/// processes provisioning at once keep the first value. `Ok(true)` when written.
pub fn provision_tenant_secret(
    tenant: &TenantId,
    name: &str,
    value: &str,
) -> std::io::Result<bool> {
    use std::io::Write;
    if !valid_tenant_secret_name(name) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{name}` is not a tenant secret name"),
        ));
    }
    let folder = tenant_dir().join(tenant.as_str());
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
    dirs.create(&folder)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(folder.join(name)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    file.write_all(format!("{value}\n").as_bytes())?;
    file.sync_all()?;
    Ok(true)
}

/// Removes `tenant`'s whole folder of the tenant secret store (its erasure: channel credentials
/// and payload key alike). `Ok(false)` when there was none.
pub fn erase_tenant_secrets(tenant: &TenantId) -> std::io::Result<bool> {
    match std::fs::remove_dir_all(tenant_dir().join(tenant.as_str())) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a secret could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret reference `{0}` is not `env:NAME`, `file:/path` or `secret:NAME`")]
    BadReference(String),
    #[error("secret `{0}` is not set")]
    Missing(String),
}

/// Resolves a secret reference.
pub fn resolve(reference: &str) -> Result<SecretString, SecretError> {
    let missing = || SecretError::Missing(reference.to_owned());
    let value = match reference.split_once(':') {
        Some(("env", name)) if !name.is_empty() => std::env::var(name).map_err(|_| missing())?,
        Some(("file", path)) if !path.is_empty() => std::fs::read_to_string(path)
            .map_err(|_| missing())?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        _ => return Err(SecretError::BadReference(reference.to_owned())),
    };
    if value.is_empty() {
        return Err(missing());
    }
    Ok(SecretString::from(value))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn references_resolve_or_fail_naming_the_reference() {
        let path = std::env::temp_dir().join(format!("zengine-secret-{}", std::process::id()));
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let file = format!("file:{}", path.display());
        assert_eq!(resolve(&file).unwrap().expose_secret(), "s3cr3t");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            resolve(&file).unwrap_err(),
            SecretError::Missing(file.clone())
        );
        // PATH is always set; an unset variable fails naming the reference only.
        assert!(!resolve("env:PATH").unwrap().expose_secret().is_empty());
        let err = resolve("env:ZENGINE_SURELY_UNSET_SECRET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret `env:ZENGINE_SURELY_UNSET_SECRET` is not set"
        );
        assert!(matches!(
            resolve("plain-value"),
            Err(SecretError::BadReference(_))
        ));
        assert!(matches!(resolve("env:"), Err(SecretError::BadReference(_))));
        // Process configuration has no tenant: `secret:` means nothing there.
        assert!(matches!(
            resolve("secret:token"),
            Err(SecretError::BadReference(_))
        ));
    }

    #[test]
    fn tenant_references_stay_in_the_tenant_folder() {
        let tenant = TenantId::parse("acme").unwrap();
        let root = tenant_dir();
        assert_eq!(
            scoped(&tenant, "secret:wa-token").unwrap(),
            format!("file:{}", root.join("acme").join("wa-token").display())
        );
        for escape in [
            "secret:../demo/wa-token",
            "secret:..",
            "secret:.",
            "secret:a/b",
            "secret:",
            "secret:/etc/passwd",
            "secret:a\\b",
        ] {
            assert!(
                matches!(scoped(&tenant, escape), Err(SecretError::BadReference(_))),
                "{escape}"
            );
            assert_eq!(reference_kind(escape), None, "{escape}");
        }
        assert_eq!(
            reference_kind("secret:wa-token"),
            Some(ReferenceKind::Tenant)
        );
        assert_eq!(reference_kind("env:X"), Some(ReferenceKind::Platform));
        assert_eq!(reference_kind("file:/x"), Some(ReferenceKind::Platform));
        assert_eq!(reference_kind("plain"), None);
        // A missing tenant secret names the tenant's reference, not the platform's path.
        assert_eq!(
            resolve_for(&tenant, "secret:surely-missing").unwrap_err(),
            SecretError::Missing("secret:surely-missing".into())
        );
    }
}
