//! The audit log: the latest entries (newest first, filtered by kind or actor), the latest
//! signed checkpoint, and a check of the whole chain against it.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use medgate_service::clock::rfc3339;
use std::time::Duration;

use medgate_store::{AuditEntry, ChainBreak, ChainReport};

use super::layout::{self, Section};
use super::{ConsoleError, SignedIn};
use crate::ServerState;
use crate::admin::Query;

/// Entries shown at most, and read at most to find them (a filter that matches rarely stops
/// there and offers the older entries).
const SHOWN: usize = 100;
const SCANNED: i64 = 2000;
const CHUNK: usize = 200;

#[derive(serde::Deserialize)]
pub(super) struct AuditQuery {
    /// Entries before this sequence number (the newest unless said).
    before: Option<i64>,
    /// Only entries whose kind starts with this (`admin.`, `attestation`).
    kind: Option<String>,
    /// Only entries of this actor (`admin`, `operator:alice`).
    actor: Option<String>,
}

/// The latest checkpoint the node signed and published, checked: (seq, hash hex, time, key).
fn checkpoint(state: &ServerState) -> Option<(i64, String, String, String)> {
    let verified = crate::latest_checkpoint(state)?;
    Some((
        verified.seq(),
        medgate_proto::hex::encode(&verified.hash()),
        rfc3339(verified.at()),
        verified.key().to_string(),
    ))
}

/// `GET /console/audit?before=&kind=&actor=`.
pub(super) async fn page(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    let kind = query.kind.unwrap_or_default();
    let actor = query.actor.unwrap_or_default();
    if kind.len() > 64 || actor.len() > 80 {
        return Err(ConsoleError::BadRequest(
            "a filter is at most 64 characters",
        ));
    }
    let head = state.store.audit_head().await?;
    let newest = head.as_ref().map_or(0, |head| head.seq);
    let before = query.before.unwrap_or(newest + 1).clamp(1, newest + 1);
    // Read back from `before` a chunk at a time until enough match or enough were read.
    let mut shown: Vec<AuditEntry> = Vec::new();
    let mut end = before;
    while shown.len() < SHOWN && end > 1 && before - end < SCANNED {
        let after = (end - 1 - CHUNK as i64).max(0);
        let chunk = state.store.audit_entries(after, CHUNK).await?;
        shown.extend(
            chunk
                .into_iter()
                .rev()
                .filter(|entry| entry.seq < end)
                .filter(|entry| entry.kind.starts_with(&kind))
                .filter(|entry| actor.is_empty() || entry.actor == actor),
        );
        end = after + 1;
    }
    shown.truncate(SHOWN);
    // A full page continues below its last entry; otherwise below what was read.
    let older = match shown.last() {
        Some(last) if shown.len() == SHOWN => last.seq,
        _ => end,
    };
    let content = html! {
        (checkpoint_section(&state))
        form.search method="get" action="/console/audit" role="search" {
            label { "Kind starts with" input name="kind" value=(kind) maxlength="64" placeholder="admin."; }
            label { "Actor" input name="actor" value=(actor) maxlength="80" placeholder="operator:alice"; }
            button type="submit" { "Filter" }
        }
        @if shown.is_empty() {
            p.quiet { "No entry matches among the entries read." }
        } @else {
            (entries(&shown))
        }
        @if older > 1 {
            p { a href=(older_link(older, &kind, &actor)) { "Older entries" } }
        }
    };
    Ok(layout::page("Audit log", &signed_in, Section::Audit, content).into_response())
}

fn older_link(before: i64, kind: &str, actor: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("before", &before.to_string())
        .append_pair("kind", kind)
        .append_pair("actor", actor)
        .finish();
    format!("/console/audit?{query}")
}

fn checkpoint_section(state: &ServerState) -> Markup {
    html! {
        section.checkpoint {
            h2 { "Latest signed checkpoint" }
            @match checkpoint(state) {
                Some((seq, hash, at, key)) => {
                    dl.facts {
                        dt { "Entry" } dd { (seq) }
                        dt { "Hash" } dd { code { (hash) } }
                        dt { "Signed" } dd { (at) }
                        dt { "Key" } dd { code { (key) } }
                    }
                    p { a href="/console/audit/verify" { "Verify the whole chain against it" } }
                },
                None => p.quiet { "None published yet." },
            }
        }
    }
}

fn entries(shown: &[AuditEntry]) -> Markup {
    html! {
        table.audit {
            thead { tr { th.n { "#" } th { "Time" } th { "Kind" } th { "Actor" } th { "Subject" } th { "Detail" } } }
            tbody {
                @for entry in shown {
                    tr {
                        td.n { (entry.seq) }
                        td { (rfc3339(entry.at)) }
                        td { (entry.kind) }
                        td { (entry.actor) }
                        td { code { (entry.subject) } }
                        td { code { (entry.detail) } }
                    }
                }
            }
        }
    }
}

/// How long a whole-chain check's answer is shown again instead of walking the chain anew.
const CHECK_REUSED_FOR: Duration = Duration::from_secs(60);

/// A whole-chain check's answer, and the checkpoint it was checked against.
pub(super) type Checked = (
    Result<ChainReport, ChainBreak>,
    Option<(i64, String, String, String)>,
);

/// `GET /console/audit/verify`: walks the whole chain (or shows the walk of the last minute),
/// and says whether it holds the latest signed checkpoint's entry (a chain cut or rewritten
/// since would not).
pub(super) async fn verify(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
) -> Result<Response, ConsoleError> {
    let ((report, latest), age) = state
        .console
        .chain
        .get(CHECK_REUSED_FOR, || async {
            let latest = checkpoint(&state);
            let expected = latest
                .as_ref()
                .and_then(|(_, hash, _, _)| medgate_proto::hex::sha256(hash));
            let report = medgate_store::audit_chain_report(&*state.store, expected).await?;
            Ok((report, latest))
        })
        .await?;
    let content = html! {
        p.quiet { "Checked " (age.as_secs()) " s ago (a check is shown again for a minute)." }
        @match report {
            Ok(report) => {
                @if report.contains_expected {
                    p.verified role="status" { "The chain verifies." }
                } @else {
                    p.problem role="alert" { "The chain verifies, but it does not contain the latest signed checkpoint's entry: it was cut off or rewritten after the checkpoint." }
                }
                dl.facts {
                    dt { "Entries" } dd { (report.entries) }
                    dt { "Head" } dd { code { (report.head) } }
                    @if report.first_seq > 1 {
                        dt { "Pruned before" } dd { (report.first_seq) }
                    }
                    @if let Some((seq, _, at, _)) = &latest {
                        dt { "Checkpoint" } dd { "entry " (seq) ", signed " (at) }
                    }
                }
            },
            Err(broken) => {
                p.problem role="alert" { "The chain does not verify at entry " (broken.seq) ": " (broken.problem) "." }
            },
        }
        p { a href="/console/audit" { "Back to the log" } }
    };
    Ok(layout::page("Audit chain", &signed_in, Section::Audit, content).into_response())
}
