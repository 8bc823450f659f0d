//! Secret references: settings never hold secret values, only where to find them.
//!
//! - `env:NAME`: the environment variable `NAME`;
//! - `file:/path`: the contents of a file (trailing newline trimmed), e.g. a Kubernetes secret
//!   volume.
//!
//! A missing secret fails fast with an error that names the *reference*, never a value; callers
//! turn it into a non-retryable failure (retrying does not make a secret appear).

use secrecy::SecretString;

/// Why a secret could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret reference `{0}` is not `env:NAME` or `file:/path`")]
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
    }
}
