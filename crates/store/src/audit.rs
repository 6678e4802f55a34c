//! The tamper-evident audit log.
//!
//! Entry `n` stores `prev_hash` (the hash of entry `n-1`, zeros for the first) and
//! `hash = SHA-256("medgate-audit-v1" ‖ seq ‖ at ‖ kind ‖ actor ‖ subject ‖ detail ‖ prev_hash)`,
//! every variable-length field prefixed with its length. Editing, inserting or deleting a row
//! breaks the chain at that row. Truncating the tail, or rewriting every hash after an edit, is
//! only caught against a head hash kept elsewhere: `medgate audit verify` prints it for that.

use medgate_verify::UnixTime;
use ring::digest;
use serde::Serialize;

const DOMAIN: &[u8] = b"medgate-audit-v1";

/// An entry to append. `detail` is JSON without patient data, tokens or keys.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub at: UnixTime,
    /// What happened, e.g. `attest.allow`, `gateway.reject`, `admin.app.create`.
    pub kind: String,
    /// Who did it: `admin`, `installation:<id>`, `gateway`.
    pub actor: String,
    /// What it was done to.
    pub subject: String,
    pub detail: serde_json::Value,
}

impl NewAuditEntry {
    /// This entry with `outcome`'s fields (what only the store learned) added to its detail,
    /// when both are objects.
    pub fn with_outcome(&self, outcome: Option<serde_json::Value>) -> NewAuditEntry {
        let mut entry = self.clone();
        if let (Some(detail), Some(serde_json::Value::Object(fields))) =
            (entry.detail.as_object_mut(), outcome)
        {
            detail.extend(fields);
        }
        entry
    }
}

/// A stored entry. The admin API shows it as [`medgate_proto::admin::AuditEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: UnixTime,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// The JSON text exactly as stored and hashed.
    pub detail: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// The entry as the admin API shows it.
    pub fn to_admin(&self) -> medgate_proto::admin::AuditEntry {
        medgate_proto::admin::AuditEntry {
            seq: self.seq,
            at: self.at,
            kind: self.kind.clone(),
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            detail: self.detail.clone(),
            prev_hash: medgate_proto::hex::encode(&self.prev_hash),
            hash: medgate_proto::hex::encode(&self.hash),
        }
    }
}

/// The hash an entry must carry.
pub fn entry_hash(
    prev_hash: &[u8; 32],
    seq: i64,
    at: UnixTime,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &str,
) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(DOMAIN);
    context.update(&seq.to_be_bytes());
    context.update(&at.secs().to_be_bytes());
    for field in [kind, actor, subject, detail] {
        context.update(&(field.len() as u64).to_be_bytes());
        context.update(field.as_bytes());
    }
    context.update(prev_hash);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// Where and why the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit entry {seq} does not verify: {problem}")]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: &'static str,
}

/// Checks entries one by one, in `seq` order.
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: i64,
    /// `None` for the first entry of a pruned log, whose predecessor is gone: that entry is
    /// vouched for by a signed checkpoint, not by the chain.
    prev_hash: Option<[u8; 32]>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: Some([0; 32]),
        }
    }

    /// For a range of the chain from `first_seq`, whose predecessor's hash is `prev_hash`.
    pub fn after(first_seq: i64, prev_hash: [u8; 32]) -> Self {
        ChainVerifier {
            next_seq: first_seq,
            prev_hash: Some(prev_hash),
        }
    }

    /// For a log pruned before `first_seq`: the chain is checked from that entry on.
    pub fn resuming_at(first_seq: i64) -> Self {
        ChainVerifier {
            next_seq: first_seq,
            prev_hash: None,
        }
    }

    pub fn check(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let broken = |problem| ChainBreak {
            seq: entry.seq,
            problem,
        };
        if entry.seq != self.next_seq {
            return Err(ChainBreak {
                seq: self.next_seq,
                problem: "entry is missing",
            });
        }
        if self.prev_hash.is_some_and(|prev| entry.prev_hash != prev) {
            return Err(broken("prev_hash does not match the previous entry"));
        }
        let expected = entry_hash(
            &entry.prev_hash,
            entry.seq,
            entry.at,
            &entry.kind,
            &entry.actor,
            &entry.subject,
            &entry.detail,
        );
        if entry.hash != expected {
            return Err(broken("content does not match its hash"));
        }
        self.next_seq = self.next_seq.checked_add(1).ok_or(ChainBreak {
            seq: entry.seq,
            problem: "sequence number overflow",
        })?;
        self.prev_hash = Some(entry.hash);
        Ok(())
    }

    /// The number of entries checked and the head hash in hex.
    pub fn finish(self) -> (u64, String) {
        (
            (self.next_seq - 1).max(0) as u64,
            medgate_proto::hex::encode(&self.prev_hash.unwrap_or([0; 32])),
        )
    }
}

/// Builds the stored form of `new` as entry `seq` after `prev_hash`. Backends call this so the
/// chain is computed in one place.
pub fn seal_entry(new: &NewAuditEntry, seq: i64, prev_hash: [u8; 32]) -> AuditEntry {
    let detail = new.detail.to_string();
    let hash = entry_hash(
        &prev_hash,
        seq,
        new.at,
        &new.kind,
        &new.actor,
        &new.subject,
        &detail,
    );
    AuditEntry {
        seq,
        at: new.at,
        kind: new.kind.clone(),
        actor: new.actor.clone(),
        subject: new.subject.clone(),
        detail,
        prev_hash,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = [0; 32];
        (1..=n)
            .map(|seq| {
                let entry = seal_entry(
                    &NewAuditEntry {
                        at: UnixTime::from_secs(1000 + seq),
                        kind: "admin.app.create".into(),
                        actor: "admin".into(),
                        subject: format!("app-{seq}"),
                        detail: serde_json::json!({"n": seq}),
                    },
                    seq,
                    prev,
                );
                prev = entry.hash;
                entry
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Result<(u64, String), ChainBreak> {
        let mut verifier = ChainVerifier::new();
        for entry in entries {
            verifier.check(entry)?;
        }
        Ok(verifier.finish())
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain(5);
        let (count, head) = verify(&entries).unwrap();
        assert_eq!(count, 5);
        assert_eq!(head, medgate_proto::hex::encode(&entries[4].hash));
        assert_eq!(verify(&[]).unwrap().0, 0);
    }

    #[test]
    fn every_kind_of_edit_names_the_first_bad_entry() {
        let mut edited = chain(5);
        edited[2].subject = "app-x".into();
        assert_eq!(
            verify(&edited).unwrap_err(),
            ChainBreak {
                seq: 3,
                problem: "content does not match its hash"
            }
        );

        let mut rehashed = chain(5);
        rehashed[2].detail = r#"{"n":99}"#.into();
        rehashed[2].hash = entry_hash(
            &rehashed[2].prev_hash,
            3,
            rehashed[2].at,
            "admin.app.create",
            "admin",
            "app-3",
            r#"{"n":99}"#,
        );
        assert_eq!(
            verify(&rehashed).unwrap_err(),
            ChainBreak {
                seq: 4,
                problem: "prev_hash does not match the previous entry"
            }
        );

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(
            verify(&deleted).unwrap_err(),
            ChainBreak {
                seq: 2,
                problem: "entry is missing"
            }
        );

        let mut retimed = chain(5);
        retimed[0].at = UnixTime::from_secs(0);
        assert_eq!(verify(&retimed).unwrap_err().seq, 1);
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let zero = [0; 32];
        let at = UnixTime::from_secs(1);
        assert_ne!(
            entry_hash(&zero, 1, at, "ab", "c", "", "{}"),
            entry_hash(&zero, 1, at, "a", "bc", "", "{}")
        );
    }
}
