//! In-memory state of the data plane: verified tokens and seen proofs. Both are bounded.

use std::collections::HashMap;
use std::sync::Arc;

use medgate_verify::UnixTime;
use medgate_verify::token::AnyToken;
use parking_lot::Mutex;

/// Verified tokens by their `ath` (base64url SHA-256 of the token), kept until `exp`, so a
/// token's signature is checked once and each request pays only for its proof.
#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, Arc<AnyToken>>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, ath: &str, now: UnixTime) -> Option<Arc<AnyToken>> {
        let mut entries = self.entries.lock();
        match entries.get(ath) {
            Some(token) if token.is_live(now) => Some(Arc::clone(token)),
            Some(_) => {
                entries.remove(ath);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, token: Arc<AnyToken>, now: UnixTime) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, cached| cached.is_live(now));
            if entries.len() >= self.capacity {
                // Still full of live tokens: drop an arbitrary one; it is re-verified if seen again.
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(token.ath().to_string(), token);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
