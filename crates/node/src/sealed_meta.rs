//! Small secrets a node keeps sealed under the master key in the store's `meta` table (the
//! audit checkpoint key, the session-MAC secret): loaded, or made once and stored. Every node
//! of a deployment reads the same row, so they share the secret.

use medgate_proto::b64;
use medgate_store::seal::Sealer;
use medgate_store::{Store, StoreError};
use zeroize::Zeroizing;

use crate::NodeError;

/// The secret under `meta_key` (sealed with `label`), or a new one from `make`, stored. A value
/// stored in the clear while a master key is now set is replaced (`replaced` says so). Two
/// nodes making one at once: the last stored wins, and each returns what it read back.
pub(crate) async fn load_or_make(
    store: &dyn Store,
    sealer: &Sealer,
    meta_key: &str,
    label: &str,
    make: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, NodeError>,
) -> Result<Loaded, NodeError> {
    if let Some(text) = store.get_meta(meta_key).await? {
        let sealed = b64::decode(&text, 8192)
            .map_err(|_| StoreError::Corrupt(format!("{meta_key} is not base64")))?;
        if !(sealer.has_master_key() && Sealer::is_plain(&sealed)) {
            return Ok(Loaded {
                secret: sealer.open(label, &sealed)?,
                made: false,
            });
        }
    }
    let secret = make()?;
    store
        .set_meta(meta_key, &b64::encode(sealer.seal(label, &secret)?))
        .await?;
    // What every node reads from now on (another node may have stored first).
    let stored = store.get_meta(meta_key).await?.ok_or_else(|| {
        StoreError::Corrupt(format!("{meta_key} is missing right after it was stored"))
    })?;
    let sealed = b64::decode(&stored, 8192)
        .map_err(|_| StoreError::Corrupt(format!("{meta_key} is not base64")))?;
    Ok(Loaded {
        secret: sealer.open(label, &sealed)?,
        made: true,
    })
}

/// A secret, and whether this node made it.
pub(crate) struct Loaded {
    pub secret: Zeroizing<Vec<u8>>,
    pub made: bool,
}
