//! TLS to PostgreSQL: `sslmode=require` in the URL turns it on, and medgate then verifies the
//! server's certificate chain and host name (what libpq calls `verify-full`; libpq's own
//! `require` does not verify, which a man in the middle would welcome). The roots are the CA
//! certificates in `[store] ca` (a PEM file, for a private CA), or else Mozilla's (webpki-roots,
//! for managed databases with public certificates). Any other `sslmode` connects in plain
//! text, for a database on loopback or a private network.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// A connector for verified TLS, with the roots from `ca` (PEM) or Mozilla's.
pub(super) fn connector(ca: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let unreadable = || {
                StoreError::Backend(format!(
                    "store.ca {} is not a readable PEM file of CA certificates",
                    path.display()
                ))
            };
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|_| unreadable())?
                .collect::<Result<_, _>>()
                .map_err(|_| unreadable())?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(unreadable());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| StoreError::Backend("no TLS protocol version available".into()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `sslmode` as medgate reads it: `verify-full` and `verify-ca` are `require` (which medgate
/// verifies as `verify-full` does); `prefer` and `allow`, which fall back to plain text when
/// TLS fails, are refused: say `require` or `disable`.
pub(super) fn normalise_sslmode(url: &str) -> Result<String, StoreError> {
    let Some(start) = url.find("sslmode=") else {
        return Ok(url.to_string());
    };
    let value_start = start + "sslmode=".len();
    let value_end = url[value_start..]
        .find(['&', ' '])
        .map_or(url.len(), |end| value_start + end);
    let mode = match &url[value_start..value_end] {
        "require" | "verify-full" | "verify-ca" => "require",
        "disable" => "disable",
        _ => {
            return Err(StoreError::Backend(
                "store.url: sslmode must be require (TLS, verified) or disable".into(),
            ));
        }
    };
    Ok(format!(
        "{}{mode}{}",
        &url[..value_start],
        &url[value_end..]
    ))
}

#[cfg(test)]
mod tests {
    use medgate_testkit::postgres::PostgresServer;

    use crate::StoreError;
    use crate::postgres::{PostgresOptions, PostgresStore};

    fn options(url: String, ca: Option<std::path::PathBuf>) -> PostgresOptions {
        PostgresOptions {
            url,
            pool_size: 2,
            statement_timeout_ms: 5_000,
            ca,
        }
    }

    #[test]
    fn sslmodes_that_fall_back_to_plain_text_are_refused() {
        use super::normalise_sslmode;
        let url = |mode: &str| {
            format!("postgres://u@db.example:5432/medgate?sslmode={mode}&connect_timeout=5")
        };
        assert_eq!(
            normalise_sslmode(&url("verify-full")).unwrap(),
            url("require")
        );
        assert_eq!(
            normalise_sslmode(&url("verify-ca")).unwrap(),
            url("require")
        );
        assert_eq!(normalise_sslmode(&url("disable")).unwrap(), url("disable"));
        for mode in ["prefer", "allow", ""] {
            assert!(normalise_sslmode(&url(mode)).is_err(), "{mode}");
        }
        assert_eq!(
            normalise_sslmode("host=db sslmode=verify-full user=u").unwrap(),
            "host=db sslmode=require user=u"
        );
        assert_eq!(
            normalise_sslmode("postgres://u@h/d").unwrap(),
            "postgres://u@h/d"
        );
    }

    #[tokio::test]
    async fn sslmode_require_verifies_the_server_against_the_configured_ca() {
        let Some(server) = tokio::task::spawn_blocking(|| PostgresServer::start(true))
            .await
            .unwrap()
        else {
            return;
        };
        let url = server.url();
        assert!(url.ends_with("sslmode=require"), "{url}");
        // The server's CA: migrated and served over TLS (it accepts nothing else over TCP).
        let store = PostgresStore::open(&options(url.clone(), Some(server.ca_path())))
            .await
            .unwrap();
        crate::conformance::append_sample_audit(&store, 2).await;
        assert!(crate::verify_audit_chain(&store).await.unwrap().is_ok());

        // Plain text is refused by the server; another CA (Mozilla's) by medgate.
        let plain = url.replace("?sslmode=require", "?sslmode=disable");
        let refused = PostgresStore::open(&options(plain, None)).await;
        assert!(matches!(refused, Err(StoreError::Backend(_))));
        let unverified = PostgresStore::open(&options(url.clone(), None)).await;
        assert!(matches!(unverified, Err(StoreError::Backend(_))));
        // A host name the certificate does not name is refused too.
        let other_name = url.replace("localhost", "127.0.0.1");
        let misnamed = PostgresStore::open(&options(other_name, Some(server.ca_path()))).await;
        assert!(matches!(misnamed, Err(StoreError::Backend(_))));
        // A CA file that holds no certificate is a clear error.
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let error = PostgresStore::open(&options(url, Some(empty)))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("not a readable PEM file"), "{error}");
    }
}
