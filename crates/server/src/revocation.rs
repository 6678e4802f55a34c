//! The Android attestation revocation status list, as the server currently knows it. The node
//! loads it (from a file or a URL) at start and refreshes it; Android attestations are refused
//! with 503 while a configured list has never loaded, rather than checked against nothing.

use std::sync::Arc;

use medgate_verify::android::revocation::RevocationList;
use parking_lot::RwLock;

/// What is known about the list.
#[derive(Debug, Clone)]
pub enum RevocationStatus {
    /// No list is configured: chains are not checked against one.
    NotConfigured,
    /// A list is configured but has not loaded yet.
    Unavailable,
    Loaded(Arc<RevocationList>),
}

/// Shared between the server (reads) and the node's loader (writes).
#[derive(Debug)]
pub struct RevocationState(RwLock<RevocationStatus>);

impl RevocationState {
    pub fn new(configured: bool) -> Self {
        RevocationState(RwLock::new(if configured {
            RevocationStatus::Unavailable
        } else {
            RevocationStatus::NotConfigured
        }))
    }

    pub fn status(&self) -> RevocationStatus {
        self.0.read().clone()
    }

    pub fn set(&self, list: RevocationList) {
        *self.0.write() = RevocationStatus::Loaded(Arc::new(list));
    }
}
