//! Installations: find one (by id, or a page of an app's), look at it, revoke it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::HeaderMap;
use maud::{Markup, html};
use medgate_proto::admin::Installation;
use medgate_proto::wire::names;
use medgate_service::clock::rfc3339;

use super::layout::{self, Section};
use super::{ConsoleError, Form, SignedIn};
use crate::ServerState;
use crate::admin::{Path, Query};

const PAGE: usize = 50;
/// Installation ids are thumbprints (43 characters) or ids the SDK makes; nothing longer.
const MAX_ID: usize = 128;

#[derive(serde::Deserialize)]
pub(super) struct Search {
    /// An installation id, exactly.
    q: Option<String>,
    app: Option<String>,
    after: Option<String>,
}

/// `GET /console/installations?q=&app=&after=`.
pub(super) async fn list(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Query(search): Query<Search>,
) -> Result<Response, ConsoleError> {
    let q = search.q.as_deref().map(str::trim).unwrap_or_default();
    let app = search.app.as_deref().unwrap_or_default();
    let after = search.after.as_deref().filter(|after| !after.is_empty());
    if q.len() > MAX_ID || after.is_some_and(|after| after.len() > MAX_ID) {
        return Err(ConsoleError::BadRequest(
            "an installation id is at most 128 characters",
        ));
    }
    if !app.is_empty() && !names::is_app_id(app) {
        return Err(ConsoleError::BadRequest("that is not an app id"));
    }
    let apps = state.store.list_apps().await?;
    let found: Vec<Installation> = if q.is_empty() {
        let app = (!app.is_empty()).then_some(app);
        state.store.list_installations(app, after, PAGE).await?
    } else {
        state.store.get_installation(q).await?.into_iter().collect()
    };
    let next = (q.is_empty() && found.len() == PAGE)
        .then(|| found.last().map(|last| last.id.clone()))
        .flatten();
    let content = html! {
        form.search method="get" action="/console/installations" role="search"
            hx-get="/console/installations" hx-target="#results" hx-select="#results"
            hx-swap="outerHTML" hx-trigger="input changed delay:300ms from:input, change from:select, submit"
            hx-push-url="true" {
            label { "Installation id" input type="search" name="q" value=(q) maxlength="128"; }
            label {
                "App"
                select name="app" {
                    option value="" { "every app" }
                    @for each in &apps {
                        option value=(each.id) selected[each.id == app] { (each.id) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        div #results {
            @if found.is_empty() {
                p.quiet { "No installation found." }
            } @else {
                (table(&found))
            }
            @if let Some(next) = next {
                p { a href=(next_link(app, &next)) { "Next page" } }
            }
        }
    };
    Ok(layout::page("Installations", &signed_in, Section::Installations, content).into_response())
}

fn next_link(app: &str, after: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("app", app)
        .append_pair("after", after)
        .finish();
    format!("/console/installations?{query}")
}

fn detail_link(id: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/console/installations/{id}")
}

fn decision(installation: &Installation) -> &'static str {
    if installation.revoked_at.is_some() {
        "revoked"
    } else {
        installation.last_decision.as_str()
    }
}

fn table(installations: &[Installation]) -> Markup {
    html! {
        table.installations {
            thead {
                tr {
                    th { "Installation" } th { "App" } th { "Version" } th { "Platform" }
                    th { "Integrity" } th { "Last decision" } th { "Last seen" }
                }
            }
            tbody {
                @for each in installations {
                    tr {
                        td { a href=(detail_link(&each.id)) { code { (each.id) } } }
                        td { (each.app_id) }
                        td { (each.app_version) }
                        td { (each.platform) }
                        td { (each.integrity_level.map(|level| level.as_str()).unwrap_or("—")) }
                        td { span class=(format!("decision {}", decision(each))) { (decision(each)) } }
                        td { time { (rfc3339(each.last_seen)) } }
                    }
                }
            }
        }
    }
}

/// `GET /console/installations/{id}`.
pub(super) async fn detail(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let installation = state
        .store
        .get_installation(&id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let i = &installation;
    let reasons: Vec<&str> = i
        .last_reasons
        .iter()
        .map(|reason| reason.as_str())
        .collect();
    let content = html! {
        dl.facts {
            dt { "Installation" } dd { code { (i.id) } }
            dt { "App" } dd { (i.app_id) " " (i.app_version) }
            dt { "Platform" } dd { (i.platform) }
            dt { "Integrity" } dd { (i.integrity_level.map(|level| level.as_str()).unwrap_or("—")) }
            dt { "Hardware-backed key" } dd { (if i.hardware_key { "yes" } else { "no" }) }
            @if let Some(identity) = &i.identity {
                dt { "Build identity" } dd { code { (identity) } }
            }
            dt { "First seen" } dd { (rfc3339(i.first_seen)) }
            dt { "Last seen" } dd { (rfc3339(i.last_seen)) }
            dt { "Last decision" } dd { span class=(format!("decision {}", decision(i))) { (i.last_decision.as_str()) } }
            @if !reasons.is_empty() {
                dt { "Reasons" } dd { (reasons.join(", ")) }
            }
            @if let Some(revoked_at) = i.revoked_at {
                dt { "Revoked" } dd.revoked { (rfc3339(revoked_at)) }
            }
        }
        @if i.revoked_at.is_none() {
            @if signed_in.role.may_change() {
                form.revoke method="post" action=(format!("{}/revoke", detail_link(&i.id))) {
                    input type="hidden" name="csrf" value=(signed_in.csrf());
                    p { "Revoking ends this installation's access: the gateway refuses its tokens within seconds, and it must attest again to get new ones." }
                    button.danger type="submit" { "Revoke installation" }
                }
            } @else {
                p.quiet { "A viewer cannot revoke; an operator can." }
            }
        }
    };
    Ok(layout::page("Installation", &signed_in, Section::Installations, content).into_response())
}

/// `POST /console/installations/{id}/revoke` (operators and admins).
pub(super) async fn revoke(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ConsoleError> {
    let form = Form::read(&state, &method, &headers, request).await?;
    signed_in.may_change(&form)?;
    crate::admin::revoke_installation(&state, signed_in.actor(), &id).await?;
    Ok(super::see_other(&detail_link(&id)))
}
