//! The installation key in software: a P-256 key pair in a file, for Linux hubs and tests.
//! On phones the key stays in the platform's keystore instead ([`crate::signer::PlatformKey`]).
//!
//! Stored as a private JWK (`{"kty":"EC","crv":"P-256","x","y","d"}`) in a file created with
//! mode 0600 and replaced atomically. A file readable by others is tightened on load.

use std::io::Write;
use std::path::Path;

use medgate_proto::{PublicJwk, Thumbprint, b64};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Why the key could not be created, loaded or saved. Never carries key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("the system random generator failed")]
    Random,
    #[error("installation key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("installation key file {0} is not a P-256 private JWK")]
    Malformed(String),
}

/// The installation's signing key.
pub struct InstallationKey {
    signing: SigningKey,
    public: PublicJwk,
    x: [u8; 32],
    y: [u8; 32],
}

impl std::fmt::Debug for InstallationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstallationKey({})", self.thumbprint())
    }
}

#[derive(Serialize, Deserialize)]
struct PrivateJwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    d: String,
}

impl InstallationKey {
    /// A new random key (not persisted).
    pub fn generate() -> Result<Self, KeyError> {
        loop {
            let mut scalar = Zeroizing::new([0u8; 32]);
            getrandom::fill(scalar.as_mut()).map_err(|_| KeyError::Random)?;
            // Out-of-range scalars (probability ~2^-32) are simply drawn again.
            if let Ok(signing) = SigningKey::from_slice(scalar.as_ref()) {
                return Self::from_signing_key(signing).ok_or(KeyError::Random);
            }
        }
    }

    fn from_signing_key(signing: SigningKey) -> Option<Self> {
        let point = signing.verifying_key().to_sec1_point(false);
        let public = PublicJwk::from_p256_sec1(point.as_bytes()).ok()?;
        let PublicJwk::P256 { x, y } = public else {
            return None;
        };
        Some(InstallationKey {
            signing,
            public,
            x,
            y,
        })
    }

    /// Loads the key at `path`, or creates and saves one if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                restrict(path)?;
                Self::from_private_jwk(&bytes)
                    .ok_or_else(|| KeyError::Malformed(path.display().to_string()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.save(path)?;
                Ok(key)
            }
            Err(source) => Err(KeyError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn from_private_jwk(bytes: &[u8]) -> Option<Self> {
        let jwk: PrivateJwk = serde_json::from_slice(bytes).ok()?;
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return None;
        }
        let d = Zeroizing::new(b64::decode_array::<32>(&jwk.d).ok()?);
        let key = Self::from_signing_key(SigningKey::from_slice(d.as_ref()).ok()?)?;
        let stored = PublicJwk::P256 {
            x: b64::decode_array(&jwk.x).ok()?,
            y: b64::decode_array(&jwk.y).ok()?,
        };
        (stored == key.public).then_some(key)
    }

    /// Writes the key as a private JWK: a temporary file with mode 0600 in the same folder,
    /// synced, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let jwk = PrivateJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64::encode(self.x),
            y: b64::encode(self.y),
            d: b64::encode(self.signing.to_bytes()),
        };
        let text =
            Zeroizing::new(serde_json::to_vec(&jwk).map_err(|e| io(std::io::Error::other(e)))?);
        let mut d = jwk.d;
        zeroize::Zeroize::zeroize(&mut d);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let temporary = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(io)?;
        restrict(&temporary)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The installation id.
    pub fn thumbprint(&self) -> Thumbprint {
        self.public.thumbprint()
    }
}

/// Makes `path` readable by its owner only.
fn restrict(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| KeyError::Io {
                    path: path.display().to_string(),
                    source,
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl crate::signer::Signer for InstallationKey {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], crate::signer::SignerError> {
        let signature: Signature = self.signing.sign(message);
        Ok(signature.to_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/installation.jwk");
        let created = InstallationKey::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = InstallationKey::load_or_create(&path).unwrap();
        assert_eq!(created.thumbprint(), loaded.thumbprint());
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn loose_permissions_are_tightened_and_damaged_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.jwk");
        InstallationKey::generate().unwrap().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        InstallationKey::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        std::fs::write(&path, b"{\"kty\":\"EC\"}").unwrap();
        assert!(matches!(
            InstallationKey::load_or_create(&path),
            Err(KeyError::Malformed(_))
        ));
        // A file whose public part does not match its private part is refused too.
        let mut jwk: serde_json::Value = serde_json::from_slice(&{
            InstallationKey::generate().unwrap().save(&path).unwrap();
            std::fs::read(&path).unwrap()
        })
        .unwrap();
        jwk["x"] = serde_json::Value::String(b64::encode([1u8; 32]));
        std::fs::write(&path, jwk.to_string()).unwrap();
        assert!(matches!(
            InstallationKey::load_or_create(&path),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn debug_shows_the_thumbprint_only() {
        let key = InstallationKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.thumbprint().as_str()));
        assert!(!shown.contains(&b64::encode(key.signing.to_bytes())));
    }
}
