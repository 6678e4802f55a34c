//! Apps and releases: each app's policy and platforms, its releases with how many
//! installations are still on each, and revoking a release.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::HeaderMap;
use maud::html;
use medgate_proto::admin::{releases_by_version, version_revoked_at};
use medgate_proto::wire::names;
use medgate_service::clock::rfc3339;

use super::layout::{self, Section};
use super::{ConsoleError, Form, SignedIn};
use crate::ServerState;
use crate::admin::Path;

fn app_link(app_id: &str) -> String {
    format!("/console/apps/{app_id}")
}

/// `GET /console/apps`.
pub(super) async fn list(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
) -> Result<Response, ConsoleError> {
    let apps = state.store.list_apps().await?;
    let content = html! {
        @if apps.is_empty() {
            p.quiet { "No app is registered (medgate admin app create)." }
        } @else {
            table {
                thead { tr { th { "App" } th { "Scopes" } th { "SDK evidence" } th { "Registered" } } }
                tbody {
                    @for app in &apps {
                        tr {
                            td { a href=(app_link(&app.id)) { (app.id) } }
                            td { (app.policy.scopes.join(" ")) }
                            td { (app.policy.sdk_evidence.as_str()) }
                            td { (rfc3339(app.created_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Apps and releases", &signed_in, Section::Apps, content).into_response())
}

/// `GET /console/apps/{app_id}`.
pub(super) async fn detail(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Path(app_id): Path<String>,
) -> Result<Response, ConsoleError> {
    if !names::is_app_id(&app_id) {
        return Err(ConsoleError::NotFound);
    }
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let releases = state.store.list_releases(&app_id).await?;
    let platforms = state.store.platform_policies(&app_id).await?;
    let on_version: BTreeMap<String, u64> = state
        .store
        .active_installations_by_version(&app_id)
        .await?
        .into_iter()
        .collect();
    // A version may have several builds: one row per version, revoked when all are.
    let versions = releases_by_version(&releases);
    let policy = &app.policy;
    let signals = |set: &std::collections::BTreeSet<medgate_proto::wire::SignalKind>| {
        set.iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let content = html! {
        dl.facts {
            dt { "Scopes" } dd { (policy.scopes.join(" ")) }
            dt { "Limited scopes" } dd { (policy.limited_scopes.join(" ")) }
            dt { "Rejects on" } dd { (signals(&policy.reject_on)) }
            dt { "Limits on" } dd { (signals(&policy.degrade_on)) }
            dt { "SDK evidence" } dd { (policy.sdk_evidence.as_str()) }
            dt { "Coverage required" } dd { (if policy.require_coverage { "yes" } else { "no" }) }
            dt { "Hardware platforms" } dd {
                @if platforms.is_empty() { "none (SDK evidence only)" }
                @else { (platforms.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ")) }
            }
        }
        h2 { "Releases" }
        @if versions.is_empty() {
            p.quiet { "No release is registered." }
        } @else {
            table.releases {
                thead { tr { th { "Version" } th { "Builds" } th { "Registered" } th { "Revoked" } th.n { "Installations on it" } th {} } }
                tbody {
                    @for (version, builds) in &versions {
                        @let revoked = version_revoked_at(builds);
                        @let on_it = on_version.get(*version).copied().unwrap_or(0);
                        @let registered = builds.iter().map(|build| build.created_at).min();
                        tr {
                            td { (version) }
                            td { (builds.len()) }
                            td { (registered.map(rfc3339).unwrap_or_default()) }
                            td.revoked { (revoked.map(rfc3339).unwrap_or_default()) }
                            td.n { (on_it) }
                            td {
                                @if revoked.is_none() && signed_in.role.may_change() {
                                    form.revoke method="post"
                                        action=(format!("{}/releases/{}/revoke", app_link(&app.id), version)) {
                                        input type="hidden" name="csrf" value=(signed_in.csrf());
                                        button.danger type="submit"
                                            title=(format!("{on_it} installations are still on {version}")) {
                                            "Revoke " (version)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.quiet { "Revoking a release refuses every installation on it at the gateway within seconds and at its next attestation; the count is of installations in use on it: not revoked, and granted at their last attestation, with that version." }
        }
    };
    Ok(layout::page(&app.id, &signed_in, Section::Apps, content).into_response())
}

/// `POST /console/apps/{app_id}/releases/{version}/revoke` (operators and admins).
pub(super) async fn revoke_release(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Path((app_id, version)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ConsoleError> {
    let form = Form::read(&state, &method, &headers, request).await?;
    signed_in.may_change(&form)?;
    if !names::is_app_id(&app_id) || !names::is_version(&version) {
        return Err(ConsoleError::NotFound);
    }
    crate::admin::revoke_release(&state, signed_in.actor(), &app_id, &version).await?;
    Ok(super::see_other(&app_link(&app_id)))
}
