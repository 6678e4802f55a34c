//! Signed checkpoints of the audit chain's head (see `medgate_verify::checkpoint`): made at
//! start and every `audit.checkpoint_interval`, appended to `<data_dir>/audit-checkpoints`
//! (one compact JWS a line, 0600: the file the operator ships elsewhere) and published at
//! `/v1/audit/checkpoint`.
//!
//! The checkpoint key signs nothing else. It is kept in the store, sealed like signing keys;
//! when a master key is configured and the stored key is in the clear, a new key is made
//! rather than the clear one trusted, and the log says so (the operator pins the new
//! thumbprint).

use std::io::Write;
use std::path::Path;

use medgate_server::Server;
use medgate_service::Clock;
use medgate_store::Store;
use medgate_store::seal::Sealer;
use medgate_store::sqlite::create_private_file;
use medgate_verify::keys::TokenSigningKey;

use crate::NodeError;

/// The file checkpoints are appended to, inside the data directory.
pub const CHECKPOINT_FILE: &str = "audit-checkpoints";
const KEY_META: &str = "audit_checkpoint_key";
const KEY_LABEL: &str = "audit-checkpoint-key";

/// The checkpoint key, loaded or made.
pub(crate) async fn key(store: &dyn Store, sealer: &Sealer) -> Result<TokenSigningKey, NodeError> {
    let server_error = |e| NodeError::Server(medgate_server::ServerError::from(e));
    let loaded = crate::sealed_meta::load_or_make(store, sealer, KEY_META, KEY_LABEL, || {
        TokenSigningKey::generate()
            .map(|(_, pkcs8)| pkcs8)
            .map_err(server_error)
    })
    .await?;
    let key = TokenSigningKey::from_pkcs8(&loaded.secret).map_err(server_error)?;
    if loaded.made {
        tracing::info!(
            thumbprint = %key.public_jwk().thumbprint(),
            "audit checkpoint key made (a key stored in the clear is replaced once a master key is set): record its thumbprint to pin checkpoints"
        );
    }
    Ok(key)
}

/// Makes a checkpoint of the current head, appends it to the file and publishes it. `None`
/// while the log is empty.
pub(crate) async fn make(
    store: &dyn Store,
    key: &TokenSigningKey,
    clock: &dyn Clock,
    data_dir: &Path,
    server: &Server,
) -> Result<Option<String>, NodeError> {
    let Some(head) = store.audit_head().await? else {
        return Ok(None);
    };
    let signed =
        medgate_verify::checkpoint::sign(key, key.public_jwk(), head.seq, &head.hash, clock.now())
            .map_err(|error| NodeError::Io {
                context: "signing an audit checkpoint".into(),
                source: std::io::Error::other(error.to_string()),
            })?;
    append(&data_dir.join(CHECKPOINT_FILE), &signed)?;
    server.publish_checkpoint(signed.clone());
    Ok(Some(signed))
}

fn append(path: &Path, line: &str) -> Result<(), NodeError> {
    create_private_file(path)?;
    let io = |source| NodeError::Io {
        context: format!("cannot append to {}", path.display()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io)?;
    writeln!(file, "{line}").map_err(io)
}
