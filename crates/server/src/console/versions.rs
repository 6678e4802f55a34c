//! Versions in the field: for each release, how many installations took it and how fast (the
//! FDA's time from a patch's availability to its deployment, to 50 % and 90 %), how many are on
//! it now, and who is still on a revoked release. The figures of `medgate report postmarket`
//! (`medgate_service::postmarket`), from a walk of the whole verified audit chain, made one at
//! a time and shown again for ten minutes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use medgate_proto::time::UnixTime;
use medgate_service::clock::rfc3339;
use medgate_service::postmarket::{self, Postmarket};

use super::layout::{self, Section};
use super::{ConsoleError, SignedIn};
use crate::ServerState;

/// How long the figures are shown again before the chain is walked anew.
const REUSED_FOR: Duration = Duration::from_secs(600);

/// The figures, or where the chain broke (then there are none).
pub(super) type Figures = Result<Postmarket, (i64, &'static str)>;

/// A duration as days, hours and minutes.
fn span(secs: Option<i64>) -> String {
    match secs {
        None => "not reached".into(),
        Some(secs) if secs >= 86_400 => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
        Some(secs) if secs >= 3600 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        Some(secs) => format!("{} min", secs / 60),
    }
}

/// `GET /console/versions`.
pub(super) async fn page(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
) -> Result<Response, ConsoleError> {
    let (figures, age) = state
        .console
        .versions
        .get(REUSED_FOR, || async {
            let to = state.clock.now().secs() + 1;
            let gathered = postmarket::gather(&*state.store, None, to, None).await?;
            Ok(gathered
                .map(|(figures, _)| figures)
                .map_err(|broken| (broken.seq, broken.problem)))
        })
        .await?;
    let content = html! {
        p.quiet { "From the whole audit log, verified as it is read, " (age.as_secs()) " s ago (shown again for ten minutes)." }
        @match &figures {
            Err((seq, problem)) => {
                p.problem role="alert" { "The audit chain does not verify at entry " (seq) " (" (problem) "): no figures are drawn from it." }
            },
            Ok(figures) => {
                @if figures.releases.is_empty() {
                    p.quiet { "No release is registered." }
                } @else {
                    table.versions {
                        thead { tr {
                            th { "App" } th { "Version" } th { "Registered" } th { "Revoked" }
                            th.n { "Took it" } th { "To 50 %" } th { "To 90 %" } th.n { "On it now" }
                        } }
                        tbody {
                            @for release in &figures.releases {
                                tr {
                                    td { (release.app_id) }
                                    td { (release.version) }
                                    td { (rfc3339(UnixTime::from_secs(release.registered_at))) }
                                    td.revoked { (release.revoked_at.map(|at| rfc3339(UnixTime::from_secs(at))).unwrap_or_default()) }
                                    td.n { (release.adopted) " of " (release.population) }
                                    td { (span(release.seconds_to_50_percent)) }
                                    td { (span(release.seconds_to_90_percent)) }
                                    td.n { (release.on_it_now) }
                                }
                            }
                        }
                    }
                    p.quiet { "Took it: installations granted on the release since it was registered, of those granted on the app since then. The times are from its registration." }
                }
                h2 { "Still on a revoked release" }
                @if figures.revoked_in_use.is_empty() {
                    p.quiet { "None." }
                } @else {
                    table {
                        thead { tr { th { "App" } th { "Version" } th.n { "Installations" } th { "Some of them" } } }
                        tbody {
                            @for stale in &figures.revoked_in_use {
                                tr {
                                    td { (stale.app_id) }
                                    td { (stale.version) }
                                    td.n { (stale.installations) }
                                    td {
                                        @for id in &stale.sample {
                                            a href=(format!("/console/installations/{id}")) { code { (id) } } " "
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        }
    };
    Ok(layout::page(
        "Versions in the field",
        &signed_in,
        Section::Versions,
        content,
    )
    .into_response())
}
