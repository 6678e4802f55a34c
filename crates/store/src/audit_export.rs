//! Audit exports: a contiguous range of the hash chain in a file that a SIEM can ingest and a
//! third party can check with its own code, without medgate or its database.
//!
//! Two formats, one line per record, the first line the export's header:
//!
//! - **JSON Lines** (`jsonl`). Header:
//!   `{"format":"medgate-audit-export/1","first_seq":F,"last_seq":L,"prev_hash":"<hex>",
//!   "head_hash":"<hex>","checkpoint":"<compact JWS>"|null}`; each entry:
//!   `{"seq":N,"at":<unix seconds>,"kind":"…","actor":"…","subject":"…","detail":"<the detail's
//!   JSON text, exactly as hashed>","prev_hash":"<hex>","hash":"<hex>"}`.
//! - **CEF** (ArcSight Common Event Format, `cef`). Header: `CEF:0|medgate|medgate|1|
//!   audit.export|audit export|1|` with `cn1` = first_seq, `cn2` = last_seq, `cs3` = prev_hash,
//!   `cs4` = head_hash and, when present, `cs5` = checkpoint. Each entry: `CEF:0|medgate|
//!   medgate|1|<kind>|<kind>|<severity>|` with `rt` = at × 1000, `suser` = actor, `cs1` =
//!   subject, `cs2` = detail, `cn1` = seq, `cs3` = prev_hash, `cs4` = hash (each `csN` with its
//!   `csNLabel`). Header fields escape `\` and `|`; extension values escape `\`, `=`, CR and LF
//!   (`\\`, `\=`, `\r`, `\n`).
//!
//! Hashes are lowercase hex SHA-256. Verification ([`verify`]), which is what a third party
//! re-implements:
//!
//! 1. The header is the first line and names this format; entries follow with seq
//!    `first_seq`, `first_seq + 1`, … `last_seq`, none missing or repeated.
//! 2. The first entry's `prev_hash` is the header's; every other entry's is the hash of the
//!    entry before it.
//! 3. Every entry's hash is SHA-256 of `medgate-audit-v1` ‖ seq (8 bytes, big-endian, signed)
//!    ‖ at (8 bytes, big-endian, signed) ‖ for each of kind, actor, subject and detail: its
//!    UTF-8 length (8 bytes, big-endian) and its bytes ‖ prev_hash (32 bytes).
//! 4. The last entry's hash is the header's `head_hash`.
//! 5. With a checkpoint (the latest signed checkpoint whose entry is in the range, when the
//!    node had one): it verifies (ES256, its `typ`, signed by the pinned key when one is given,
//!    see `medgate_verify::checkpoint`), and the entry with its seq has its hash. That entry,
//!    and through the chain every entry before it, is vouched for by the node's checkpoint key.
//!
//! Lines are bounded ([`MAX_LINE`]); input is read a line at a time.

use std::io::{BufRead, Read, Write};

use medgate_proto::hex;
use medgate_verify::UnixTime;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, ChainBreak, ChainVerifier};

/// The `format` of a JSON Lines export.
pub const FORMAT: &str = "medgate-audit-export/1";
/// The longest line read.
pub const MAX_LINE: usize = 1024 * 1024;

/// An export's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Cef,
}

/// What the first line says about the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub prev_hash: String,
    pub head_hash: String,
    pub checkpoint: Option<String>,
}

/// One entry as exported.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: i64,
    at: i64,
    kind: String,
    actor: String,
    subject: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl Header {
    /// The header of the range from `first` to `last`, with `checkpoint` (a compact JWS whose
    /// entry is in the range).
    pub fn of(first: &AuditEntry, last: &AuditEntry, checkpoint: Option<&str>) -> Header {
        Header {
            format: FORMAT.into(),
            first_seq: first.seq,
            last_seq: last.seq,
            prev_hash: hex::encode(&first.prev_hash),
            head_hash: hex::encode(&last.hash),
            checkpoint: checkpoint.map(str::to_string),
        }
    }
}

/// Writes the first line of an export. The entries follow, each with [`write_entry`], so an
/// export of any size streams.
pub fn write_header(out: &mut dyn Write, format: Format, header: &Header) -> std::io::Result<()> {
    match format {
        Format::Jsonl => writeln!(out, "{}", json(header)?),
        Format::Cef => {
            let mut extension = format!(
                "cn1Label=first_seq cn1={} cn2Label=last_seq cn2={} cs3Label=prev_hash cs3={} cs4Label=head_hash cs4={}",
                header.first_seq, header.last_seq, header.prev_hash, header.head_hash
            );
            if let Some(checkpoint) = &header.checkpoint {
                extension.push_str(&format!(
                    " cs5Label=checkpoint cs5={}",
                    cef_value(checkpoint)
                ));
            }
            writeln!(
                out,
                "CEF:0|medgate|medgate|1|audit.export|audit export|1|{extension}"
            )
        }
    }
}

/// Writes one entry of an export.
pub fn write_entry(out: &mut dyn Write, format: Format, entry: &AuditEntry) -> std::io::Result<()> {
    match format {
        Format::Jsonl => {
            let line = Line {
                seq: entry.seq,
                at: entry.at.secs(),
                kind: entry.kind.clone(),
                actor: entry.actor.clone(),
                subject: entry.subject.clone(),
                detail: entry.detail.clone(),
                prev_hash: hex::encode(&entry.prev_hash),
                hash: hex::encode(&entry.hash),
            };
            writeln!(out, "{}", json(&line)?)
        }
        Format::Cef => writeln!(
            out,
            "CEF:0|medgate|medgate|1|{kind}|{kind}|{severity}|rt={rt} suser={actor} cs1Label=subject cs1={subject} cs2Label=detail cs2={detail} cn1Label=seq cn1={seq} cs3Label=prev_hash cs3={prev} cs4Label=hash cs4={hash}",
            kind = cef_header(&entry.kind),
            severity = severity(&entry.kind),
            rt = entry.at.secs().saturating_mul(1000),
            actor = cef_value(&entry.actor),
            subject = cef_value(&entry.subject),
            detail = cef_value(&entry.detail),
            seq = entry.seq,
            prev = hex::encode(&entry.prev_hash),
            hash = hex::encode(&entry.hash),
        ),
    }
}

fn json(value: &impl Serialize) -> std::io::Result<String> {
    serde_json::to_string(value).map_err(std::io::Error::other)
}

/// CEF severity (0–10) by what the entry records: refusals and rejections 5, admin changes 6,
/// the rest 3.
fn severity(kind: &str) -> u8 {
    if kind.starts_with("admin.") {
        6
    } else if kind.contains("reject") || kind.contains("refus") {
        5
    } else {
        3
    }
}

fn cef_header(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub format: &'static str,
    pub first_seq: i64,
    pub last_seq: i64,
    pub head_hash: String,
    /// The checkpoint's seq, when the export carries one that verified.
    pub checkpoint_seq: Option<i64>,
}

/// Why an export does not verify. Messages name a line or a seq, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("line {0} cannot be read: {1}")]
    Unreadable(usize, &'static str),
    #[error("the first line is not a medgate audit export header")]
    NoHeader,
    #[error("{0}")]
    Chain(ChainBreak),
    #[error("the export ends at entry {found}, its header says {expected}")]
    Truncated { expected: i64, found: i64 },
    #[error("the last entry's hash is not the header's head_hash")]
    HeadMismatch,
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(String),
    #[error("entry {0}, which the checkpoint signs, does not have the checkpoint's hash")]
    CheckpointMismatch(i64),
    #[error("the checkpoint's entry {0} is not in the export")]
    CheckpointOutside(i64),
}

/// Verifies an export read from `input` (either format, told apart by its first line), with the
/// checkpoint's key pinned to `pinned` when given.
pub fn verify(
    input: &mut dyn BufRead,
    pinned: Option<&medgate_proto::Thumbprint>,
) -> Result<Verified, ExportError> {
    let mut lines = Lines { input, number: 0 };
    // Step 1.
    let first = lines.next()?.ok_or(ExportError::NoHeader)?;
    let (format, header) = if first.starts_with("CEF:") {
        (
            Format::Cef,
            cef_header_record(&first).ok_or(ExportError::NoHeader)?,
        )
    } else {
        let header: Header = serde_json::from_str(&first).map_err(|_| ExportError::NoHeader)?;
        (Format::Jsonl, header)
    };
    if header.format != FORMAT
        || header.first_seq < 1
        || header.last_seq < header.first_seq
        || header.last_seq == i64::MAX
    {
        return Err(ExportError::NoHeader);
    }
    let prev_hash = hex::sha256(&header.prev_hash).ok_or(ExportError::NoHeader)?;
    let head_hash = hex::sha256(&header.head_hash).ok_or(ExportError::NoHeader)?;
    let checkpoint = header
        .checkpoint
        .as_deref()
        .map(|compact| {
            medgate_verify::checkpoint::verify(compact, pinned)
                .map_err(|error| ExportError::Checkpoint(error.to_string()))
        })
        .transpose()?;
    if let Some(signed) = &checkpoint
        && !(header.first_seq..=header.last_seq).contains(&signed.seq())
    {
        return Err(ExportError::CheckpointOutside(signed.seq()));
    }
    // Steps 2 and 3.
    let mut verifier = ChainVerifier::after(header.first_seq, prev_hash);
    let mut last = None;
    while let Some(text) = lines.next()? {
        let entry = match format {
            Format::Jsonl => jsonl_entry(&text),
            Format::Cef => cef_entry(&text),
        }
        .ok_or(ExportError::Unreadable(
            lines.number,
            "not an entry of this format",
        ))?;
        verifier.check(&entry).map_err(ExportError::Chain)?;
        if let Some(signed) = &checkpoint
            && entry.seq == signed.seq()
            && entry.hash != signed.hash()
        {
            return Err(ExportError::CheckpointMismatch(entry.seq));
        }
        if entry.seq > header.last_seq {
            return Err(ExportError::Unreadable(
                lines.number,
                "an entry after last_seq",
            ));
        }
        last = Some((entry.seq, entry.hash));
    }
    // Step 4.
    let (found, hash) = last.unwrap_or((header.first_seq - 1, prev_hash));
    if found != header.last_seq {
        return Err(ExportError::Truncated {
            expected: header.last_seq,
            found,
        });
    }
    if hash != head_hash {
        return Err(ExportError::HeadMismatch);
    }
    Ok(Verified {
        format: match format {
            Format::Jsonl => "jsonl",
            Format::Cef => "cef",
        },
        first_seq: header.first_seq,
        last_seq: header.last_seq,
        head_hash: header.head_hash,
        checkpoint_seq: checkpoint.map(|signed| signed.seq()),
    })
}

/// Bounded lines, numbered from 1.
struct Lines<'a> {
    input: &'a mut dyn BufRead,
    number: usize,
}

impl Lines<'_> {
    fn next(&mut self) -> Result<Option<String>, ExportError> {
        self.number += 1;
        let mut bytes = Vec::new();
        let read = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|_| ExportError::Unreadable(self.number, "read failed"))?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.len() > MAX_LINE {
            return Err(ExportError::Unreadable(
                self.number,
                "longer than a line may be",
            ));
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ExportError::Unreadable(self.number, "not UTF-8"))
    }
}

fn jsonl_entry(text: &str) -> Option<AuditEntry> {
    let line: Line = serde_json::from_str(text).ok()?;
    Some(AuditEntry {
        seq: line.seq,
        at: UnixTime::from_secs(line.at),
        kind: line.kind,
        actor: line.actor,
        subject: line.subject,
        detail: line.detail,
        prev_hash: hex::sha256(&line.prev_hash)?,
        hash: hex::sha256(&line.hash)?,
    })
}

/// A CEF extension's key-value pairs, in order.
type Pairs = Vec<(String, String)>;

/// A CEF record's header fields (after `CEF:`) and its extension's key-value pairs.
fn cef_record(text: &str) -> Option<(Vec<String>, Pairs)> {
    let rest = text.strip_prefix("CEF:")?;
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = rest.char_indices();
    let mut extension_at = None;
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => field.push(chars.next()?.1),
            '|' => {
                fields.push(std::mem::take(&mut field));
                if fields.len() == 7 {
                    extension_at = Some(index + 1);
                    break;
                }
            }
            c => field.push(c),
        }
    }
    let extension = &rest[extension_at?..];
    Some((fields, cef_extension(extension)?))
}

/// `key=value` pairs: a key is the word before an unescaped `=`; its value runs to the space
/// before the next key.
fn cef_extension(text: &str) -> Option<Pairs> {
    let bytes = text.as_bytes();
    let mut keys = Vec::new();
    let mut index = 0;
    // Where the word the scan is in began: just after the last space.
    let mut word = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'=' => {
                keys.push((word, index));
                index += 1;
            }
            b' ' => {
                word = index + 1;
                index += 1;
            }
            _ => index += 1,
        }
    }
    let mut pairs = Vec::new();
    for (position, &(start, equals)) in keys.iter().enumerate() {
        let end = keys
            .get(position + 1)
            .map_or(text.len(), |&(next, _)| next.saturating_sub(1));
        let key = text.get(start..equals)?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        pairs.push((
            key.to_string(),
            cef_unescape(text.get(equals + 1..end.max(equals + 1))?)?,
        ));
    }
    Some(pairs)
}

fn cef_unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            c @ ('\\' | '=') => c,
            _ => return None,
        });
    }
    Some(out)
}

fn value<'p>(pairs: &'p [(String, String)], key: &str) -> Option<&'p str> {
    let mut found = pairs.iter().filter(|(k, _)| k == key);
    let (_, value) = found.next()?;
    // A repeated key is ambiguous.
    found.next().is_none().then_some(value.as_str())
}

/// The record's header fields are `0|medgate|medgate|1|<name>|<name or title>|<severity>`
/// exactly, and its keys exactly `keys` (labels with their values), each once: nothing a SIEM
/// shows is left outside what the verifier checks.
fn cef_strict<'p>(
    fields: &[String],
    pairs: &'p [(String, String)],
    title: &str,
    severity: u8,
    keys: &[(&str, Option<&str>)],
) -> Option<&'p [(String, String)]> {
    let expected = ["0", "medgate", "medgate", "1"];
    if fields.len() != 7
        || fields[..4] != expected
        || fields[5] != title
        || fields[6] != severity.to_string()
        || pairs.len() != keys.len()
    {
        return None;
    }
    for (key, label) in keys {
        let found = value(pairs, key)?;
        if label.is_some_and(|label| label != found) {
            return None;
        }
    }
    Some(pairs)
}

fn cef_header_record(text: &str) -> Option<Header> {
    let (fields, pairs) = cef_record(text)?;
    if fields.get(4).map(String::as_str) != Some("audit.export") {
        return None;
    }
    let mut keys = vec![
        ("cn1Label", Some("first_seq")),
        ("cn1", None),
        ("cn2Label", Some("last_seq")),
        ("cn2", None),
        ("cs3Label", Some("prev_hash")),
        ("cs3", None),
        ("cs4Label", Some("head_hash")),
        ("cs4", None),
    ];
    if value(&pairs, "cs5").is_some() {
        keys.extend([("cs5Label", Some("checkpoint")), ("cs5", None)]);
    }
    let pairs = cef_strict(&fields, &pairs, "audit export", 1, &keys)?;
    Some(Header {
        format: FORMAT.into(),
        first_seq: value(pairs, "cn1")?.parse().ok()?,
        last_seq: value(pairs, "cn2")?.parse().ok()?,
        prev_hash: value(pairs, "cs3")?.to_string(),
        head_hash: value(pairs, "cs4")?.to_string(),
        checkpoint: value(pairs, "cs5").map(str::to_string),
    })
}

fn cef_entry(text: &str) -> Option<AuditEntry> {
    let (fields, pairs) = cef_record(text)?;
    let kind = fields.get(4)?;
    let keys = [
        ("rt", None),
        ("suser", None),
        ("cs1Label", Some("subject")),
        ("cs1", None),
        ("cs2Label", Some("detail")),
        ("cs2", None),
        ("cn1Label", Some("seq")),
        ("cn1", None),
        ("cs3Label", Some("prev_hash")),
        ("cs3", None),
        ("cs4Label", Some("hash")),
        ("cs4", None),
    ];
    let pairs = cef_strict(&fields, &pairs, kind, severity(kind), &keys)?;
    let rt: i64 = value(pairs, "rt")?.parse().ok()?;
    if rt % 1000 != 0 {
        return None;
    }
    Some(AuditEntry {
        seq: value(pairs, "cn1")?.parse().ok()?,
        at: UnixTime::from_secs(rt / 1000),
        kind: kind.clone(),
        actor: value(pairs, "suser")?.to_string(),
        subject: value(pairs, "cs1")?.to_string(),
        detail: value(pairs, "cs2")?.to_string(),
        prev_hash: hex::sha256(value(pairs, "cs3")?)?,
        hash: hex::sha256(value(pairs, "cs4")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{NewAuditEntry, seal_entry};

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = [0; 32];
        (1..=n)
            .map(|seq| {
                let entry = seal_entry(
                    &NewAuditEntry {
                        at: UnixTime::from_secs(1_800_000_000 + seq),
                        kind: if seq % 2 == 0 { "admin.app.create" } else { "attest.reject" }.into(),
                        actor: "installation:a=b|c\\d".into(),
                        subject: format!("org.example.{seq} with spaces, = and | and\nnewline"),
                        detail: serde_json::json!({"reasons": ["hook_detected"], "n": seq, "text": "x=1 y\\z"}),
                    },
                    seq,
                    prev,
                );
                prev = entry.hash;
                entry
            })
            .collect()
    }

    fn write(out: &mut Vec<u8>, format: Format, entries: &[AuditEntry], checkpoint: Option<&str>) {
        let header = Header::of(&entries[0], &entries[entries.len() - 1], checkpoint);
        write_header(out, format, &header).unwrap();
        for entry in entries {
            write_entry(out, format, entry).unwrap();
        }
    }

    fn exported(format: Format, entries: &[AuditEntry]) -> String {
        let mut out = Vec::new();
        write(&mut out, format, entries, None);
        String::from_utf8(out).unwrap()
    }

    fn check(text: &str) -> Result<Verified, ExportError> {
        verify(&mut text.as_bytes(), None)
    }

    #[test]
    fn both_formats_round_trip_a_range_of_the_chain() {
        let entries = chain(9);
        for format in [Format::Jsonl, Format::Cef] {
            // The whole chain, and a range from its middle (anchored by prev_hash).
            for range in [&entries[..], &entries[3..7]] {
                let verified = check(&exported(format, range)).unwrap();
                assert_eq!(verified.first_seq, range[0].seq);
                assert_eq!(verified.last_seq, range[range.len() - 1].seq);
                assert_eq!(
                    verified.head_hash,
                    hex::encode(&range[range.len() - 1].hash)
                );
            }
        }
    }

    #[test]
    fn every_change_to_an_export_is_refused_with_its_reason() {
        let entries = chain(6);
        for format in [Format::Jsonl, Format::Cef] {
            let text = exported(format, &entries);
            let lines: Vec<&str> = text.lines().collect();
            let join = |lines: &[&str]| lines.join("\n") + "\n";
            // An entry's content edited (the detail's number).
            let edited = text
                .replacen("\"n\\\":3", "\"n\\\":4", 1)
                .replacen("\"n\":3", "\"n\":4", 1);
            assert_ne!(edited, text, "{format:?}");
            assert!(
                matches!(
                    check(&edited),
                    Err(ExportError::Chain(ChainBreak { seq: 3, .. }))
                ),
                "{format:?}: {:?}",
                check(&edited)
            );
            // An entry removed, the last one cut, entries swapped.
            let mut removed = lines.clone();
            removed.remove(3);
            assert!(matches!(check(&join(&removed)), Err(ExportError::Chain(_))));
            assert_eq!(
                check(&join(&lines[..lines.len() - 1])),
                Err(ExportError::Truncated {
                    expected: 6,
                    found: 5
                })
            );
            let mut swapped = lines.clone();
            swapped.swap(2, 3);
            assert!(matches!(check(&join(&swapped)), Err(ExportError::Chain(_))));
            // A header that does not anchor the first entry, or names another head.
            let other = hex::encode(&[7u8; 32]);
            let anchor = hex::encode(&entries[0].prev_hash);
            let header = lines[0].replacen(&anchor, &other, 1);
            let mut moved = lines.clone();
            moved[0] = &header;
            assert!(matches!(
                check(&join(&moved)),
                Err(ExportError::Chain(ChainBreak { seq: 1, .. }))
            ));
            // No header, or garbage.
            assert_eq!(check(&join(&lines[1..])), Err(ExportError::NoHeader));
            assert_eq!(check(""), Err(ExportError::NoHeader));
            let garbage = join(&[lines[0], "not an entry"]);
            assert_eq!(
                check(&garbage),
                Err(ExportError::Unreadable(2, "not an entry of this format"))
            );
            // A header naming another head than the last entry's.
            let head = hex::encode(&entries[5].hash);
            let header = lines[0].replacen(&head, &other, 1);
            let mut other_head = lines.clone();
            other_head[0] = &header;
            assert_eq!(check(&join(&other_head)), Err(ExportError::HeadMismatch));
            // A line that is not UTF-8, and one longer than any line may be.
            let mut bytes = join(&lines[..2]).into_bytes();
            bytes.extend_from_slice(b"\xff\xfe\n");
            assert_eq!(
                verify(&mut &bytes[..], None),
                Err(ExportError::Unreadable(3, "not UTF-8"))
            );
            let long = format!("{}\n{}\n", lines[0], "x".repeat(MAX_LINE + 1));
            assert_eq!(
                check(&long),
                Err(ExportError::Unreadable(2, "longer than a line may be"))
            );
        }
    }

    /// A checkpoint of an entry in the range vouches for it; one of another entry's hash, one
    /// outside the range, or one by a key other than the pinned one is refused.
    #[test]
    fn a_checkpoint_in_the_range_verifies_under_its_pinned_key() {
        use medgate_verify::checkpoint;
        use medgate_verify::keys::TokenSigningKey;
        let entries = chain(8);
        let (key, _) = TokenSigningKey::generate().unwrap();
        let thumbprint = key.public_jwk().thumbprint();
        let (other, _) = TokenSigningKey::generate().unwrap();
        let at = UnixTime::from_secs(1_800_000_100);
        let signed = |seq: i64, hash: &[u8; 32]| {
            checkpoint::sign(&key, key.public_jwk(), seq, hash, at).unwrap()
        };
        let export = |checkpoint: &str| {
            let mut out = Vec::new();
            write(&mut out, Format::Cef, &entries[2..], Some(checkpoint));
            out
        };
        let good = export(&signed(6, &entries[5].hash));
        let verified = verify(&mut &good[..], Some(&thumbprint)).unwrap();
        assert_eq!(verified.checkpoint_seq, Some(6));
        assert!(matches!(
            verify(&mut &good[..], Some(&other.public_jwk().thumbprint())),
            Err(ExportError::Checkpoint(_))
        ));
        assert_eq!(
            verify(&mut &export(&signed(6, &entries[4].hash))[..], None),
            Err(ExportError::CheckpointMismatch(6))
        );
        assert_eq!(
            verify(&mut &export(&signed(2, &entries[1].hash))[..], None),
            Err(ExportError::CheckpointOutside(2))
        );
    }

    /// Exports computed from the README's description by another implementation (see
    /// `testdata/README.md`) verify here, byte for byte as written.
    #[test]
    fn exports_made_by_an_independent_implementation_verify() {
        let head = "12f5a1dd9e55d9e04e83e09ff9f85b36e13dfc598f146b099c780c5f5e8faa1e";
        for (text, format) in [
            (include_str!("../testdata/audit-export.jsonl"), "jsonl"),
            (include_str!("../testdata/audit-export.cef"), "cef"),
        ] {
            let verified = check(text).unwrap();
            assert_eq!((verified.format, verified.last_seq), (format, 2));
            assert_eq!(verified.head_hash, head);
        }
    }

    /// What a SIEM shows is all checked: another title, severity, label or an extra or
    /// repeated key (which one reader takes first and another last) is refused.
    #[test]
    fn cef_records_carry_nothing_the_verifier_does_not_check() {
        let entries = chain(2);
        let text = exported(Format::Cef, &entries);
        let lines: Vec<&str> = text.lines().collect();
        let entry = lines[2];
        for forged in [
            entry.replacen("|admin.app.create|6|", "|admin.app.create|1|", 1),
            entry.replacen(
                "admin.app.create|admin.app.create",
                "admin.app.create|all fine",
                1,
            ),
            entry.replacen("cs1Label=subject", "cs1Label=patient", 1),
            format!("{entry} msg=all fine"),
            entry.replacen(" cs2Label=detail", " cs2=forged cs2Label=detail", 1),
            entry.replacen("CEF:0|medgate|medgate|1|", "CEF:0|medgate|other|1|", 1),
        ] {
            assert_ne!(forged, entry);
            let changed = [lines[0], lines[1], &forged].join("\n");
            assert_eq!(
                check(&changed),
                Err(ExportError::Unreadable(3, "not an entry of this format")),
                "{forged}"
            );
        }
        let header = format!("{} msg=x", lines[0]);
        assert_eq!(
            check(&[header.as_str(), lines[1], lines[2]].join("\n")),
            Err(ExportError::NoHeader)
        );
        // A blank line is not skipped.
        assert!(check(&[lines[0], "", lines[1], lines[2]].join("\n")).is_err());
        // The largest sequence number is refused, not overflowed.
        let json = exported(Format::Jsonl, &entries);
        let huge = json.replacen("\"last_seq\":2", &format!("\"last_seq\":{}", i64::MAX), 1);
        assert_eq!(check(&huge), Err(ExportError::NoHeader));
    }

    #[test]
    fn cef_escapes_what_its_syntax_uses() {
        assert_eq!(cef_value("a=b\\c\nd\re|f"), "a\\=b\\\\c\\nd\\re|f");
        assert_eq!(cef_header("a|b\\c"), "a\\|b\\\\c");
        assert_eq!(cef_unescape("a\\=b\\\\c\\nd"), Some("a=b\\c\nd".into()));
        assert_eq!(cef_unescape("a\\x"), None);
        let pairs = cef_extension("k1=v 1 k2=a\\=b k3=").unwrap();
        assert_eq!(
            pairs,
            [
                ("k1".into(), "v 1".into()),
                ("k2".into(), "a=b".into()),
                ("k3".into(), String::new())
            ]
        );
        assert_eq!(severity("admin.app.create"), 6);
        assert_eq!(severity("attest.reject"), 5);
        assert_eq!(severity("attest.allow"), 3);
    }
}
