//! Google's attestation certificate status list (`https://android.googleapis.com/attestation/status`):
//! `{"entries": {"<serial>": {"status": "REVOKED"|"SUSPENDED", "reason"?, "expires"?, "comment"?}}}`.
//!
//! Keys are certificate serial numbers in lowercase hex without leading zeros (Java's
//! `BigInteger.toString(16)`); a key made only of digits is still hex. Any listed serial
//! rejects the chain: REVOKED and SUSPENDED both mean "do not trust now", and an unknown status
//! is treated the same way rather than ignored.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The largest status list read (Google's is a few hundred kilobytes).
pub const MAX_LIST: usize = 32 * 1024 * 1024;

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationListError {
    #[error("the revocation status list is larger than {MAX_LIST} bytes")]
    TooLarge,
    #[error("the revocation status list is malformed: {0}")]
    Malformed(String),
}

/// One listed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    entries: HashMap<String, RevocationEntry>,
}

/// A parsed status list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    entries: HashMap<String, RevocationEntry>,
}

impl RevocationList {
    pub fn parse(json: &[u8]) -> Result<RevocationList, RevocationListError> {
        if json.len() > MAX_LIST {
            return Err(RevocationListError::TooLarge);
        }
        let document: Document = serde_json::from_slice(json)
            .map_err(|e| RevocationListError::Malformed(medgate_proto::redact::json_error(&e)))?;
        let mut entries = HashMap::with_capacity(document.entries.len());
        for (serial, entry) in document.entries {
            let normalised = serial.to_ascii_lowercase();
            let normalised = normalised.trim_start_matches('0');
            if !normalised.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RevocationListError::Malformed(format!(
                    "serial {serial:?} is not hex"
                )));
            }
            entries.insert(
                if normalised.is_empty() {
                    "0".into()
                } else {
                    normalised.to_string()
                },
                entry,
            );
        }
        Ok(RevocationList { entries })
    }

    /// The entry for a serial number (lowercase hex, no leading zeros), if listed.
    pub fn lookup(&self, serial_hex: &str) -> Option<&RevocationEntry> {
        self.entries.get(serial_hex)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_looked_up_in_normalised_hex() {
        let list = RevocationList::parse(br#"{"entries": {"00C8966FCB2FBB0D7A": {"status": "SUSPENDED", "reason": "SOFTWARE_FLAW"}, "1": {"status": "REVOKED"}}}"#).unwrap();
        assert_eq!(list.lookup("c8966fcb2fbb0d7a").unwrap().status, "SUSPENDED");
        assert_eq!(list.lookup("1").unwrap().status, "REVOKED");
        assert!(list.lookup("badbeef").is_none());
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn malformed_lists_are_refused() {
        for bad in [
            &b"{}"[..],
            b"[]",
            b"{\"entries\": {\"xyz\": {\"status\": \"REVOKED\"}}}",
            b"{\"entries\": {\"1\": {}}}",
            b"not json",
        ] {
            assert!(
                matches!(
                    RevocationList::parse(bad),
                    Err(RevocationListError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            RevocationList::parse(&vec![b' '; MAX_LIST + 1]).unwrap_err(),
            RevocationListError::TooLarge
        );
    }
}
