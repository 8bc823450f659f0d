//! Client certificates checked before they are used: a certificate outside its validity stops
//! start-up with one line naming the setting it came from. The peer would otherwise refuse the
//! handshake with a TLS alert (`received fatal alert: CertificateExpired`) that names no
//! setting, or, for some servers, with nothing at all.

use std::time::SystemTime;

/// Checks that the first certificate of the PEM chain `pem` (read from `setting`) is valid
/// now: "`setting`: the client certificate (`subject`) expired on `date`" otherwise.
pub fn check_valid_now(pem: &[u8], setting: &str) -> anyhow::Result<()> {
    check_valid_at(pem, setting, SystemTime::now())
}

fn check_valid_at(pem: &[u8], setting: &str, now: SystemTime) -> anyhow::Result<()> {
    // (`load_pem_chain` of an empty input underflows: x509-cert 0.2.5 computes `len - 1`.)
    if pem.trim_ascii().is_empty() {
        anyhow::bail!("{setting}: no certificate in the file");
    }
    let chain = x509_cert::Certificate::load_pem_chain(pem)
        .map_err(|e| anyhow::anyhow!("{setting}: not a PEM certificate: {e}"))?;
    let Some(cert) = chain.first() else {
        anyhow::bail!("{setting}: no certificate in the file");
    };
    let validity = &cert.tbs_certificate.validity;
    let subject = cert.tbs_certificate.subject.to_string();
    anyhow::ensure!(
        now <= validity.not_after.to_system_time(),
        "{setting}: the client certificate ({subject}) expired on {}",
        validity.not_after
    );
    anyhow::ensure!(
        now >= validity.not_before.to_system_time(),
        "{setting}: the client certificate ({subject}) is not valid before {}",
        validity.not_before
    );
    Ok(())
}

/// The client certificate and key a PostgreSQL URL names (`sslcert`, `sslkey`, as libpq
/// spells them), read and checked: a file that cannot be read names its parameter, an expired
/// certificate names `sslcert` and its date. A URL without them passes.
pub fn check_postgres_url(url: &str) -> anyhow::Result<()> {
    let Ok(parsed) = url::Url::parse(url) else {
        // sqlx reports a malformed URL itself, naming what is wrong.
        return Ok(());
    };
    for (name, value) in parsed.query_pairs() {
        match name.as_ref() {
            "sslcert" => {
                let pem = read(&name, &value)?;
                check_valid_now(&pem, &format!("sslcert ({value})"))?;
            }
            "sslkey" => {
                read(&name, &value)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn read(name: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{name}: cannot read {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_certificate_names_the_setting() {
        let error = check_valid_now(b"not pem", "sslcert").unwrap_err();
        assert!(
            error.to_string().starts_with("sslcert: not a PEM"),
            "{error}"
        );
        let error = check_valid_now(b"", "sslcert").unwrap_err();
        assert!(error.to_string().starts_with("sslcert:"), "{error}");
    }

    #[test]
    fn urls_without_client_certificates_pass() {
        check_postgres_url("postgres://app@db/zengine?sslmode=require").unwrap();
        check_postgres_url("postgres://app@db/zengine").unwrap();
        let error = check_postgres_url("postgres://app@db/z?sslkey=/nonexistent/k.pem")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("sslkey: cannot read /nonexistent/k.pem"),
            "{error}"
        );
    }
}
