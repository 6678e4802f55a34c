//! Installations: find one (by id, or a page of an app's), look at it, revoke it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::HeaderMap;
use maud::{Markup, html};
use medgate_proto::admin::Installation;
use medgate_proto::wire::{Decision, IntegrityLevel, names, platform};
use medgate_service::clock::rfc3339;
use medgate_store::InstallationFilter;

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
    version: Option<String>,
    platform: Option<String>,
    decision: Option<String>,
    integrity: Option<String>,
    after: Option<String>,
}

/// The integrity levels an installation may reach, and the decisions.
const LEVELS: [IntegrityLevel; 5] = [
    IntegrityLevel::SelfReported,
    IntegrityLevel::Basic,
    IntegrityLevel::Device,
    IntegrityLevel::Hardware,
    IntegrityLevel::Strongbox,
];
const DECISIONS: [Decision; 3] = [Decision::Allow, Decision::AllowLimited, Decision::Reject];

/// A search field's value: none when empty, refused when it is not one of `choices`.
fn chosen<T: Copy>(
    text: Option<&str>,
    choices: &[T],
    name: impl Fn(T) -> &'static str,
    why: &'static str,
) -> Result<Option<T>, ConsoleError> {
    match text.filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => choices
            .iter()
            .copied()
            .find(|choice| name(*choice) == text)
            .map(Some)
            .ok_or(ConsoleError::BadRequest(why)),
    }
}

/// `GET /console/installations?q=&app=&version=&platform=&decision=&integrity=&after=`.
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
    let version = search.version.as_deref().unwrap_or_default();
    if !version.is_empty() && !names::is_version(version) {
        return Err(ConsoleError::BadRequest("that is not a version"));
    }
    let filter = InstallationFilter {
        app_id: (!app.is_empty()).then_some(app),
        version: (!version.is_empty()).then_some(version),
        platform: chosen(
            search.platform.as_deref(),
            &platform::ALL,
            |platform| platform,
            "that is not a platform",
        )?,
        decision: chosen(
            search.decision.as_deref(),
            &DECISIONS,
            Decision::as_str,
            "that is not a decision",
        )?,
        integrity_level: chosen(
            search.integrity.as_deref(),
            &LEVELS,
            IntegrityLevel::as_str,
            "that is not an integrity level",
        )?,
    };
    let apps = state.store.list_apps().await?;
    let found: Vec<Installation> = if q.is_empty() {
        state.store.list_installations(&filter, after, PAGE).await?
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
            label { "Version" input name="version" value=(version) maxlength="64"; }
            (select("platform", "Platform", "every platform", &platform::ALL, filter.platform))
            (select("decision", "Last decision", "any decision",
                &DECISIONS.map(Decision::as_str), filter.decision.map(Decision::as_str)))
            (select("integrity", "Integrity", "any level",
                &LEVELS.map(IntegrityLevel::as_str), filter.integrity_level.map(IntegrityLevel::as_str)))
            button type="submit" { "Search" }
        }
        div #results {
            @if found.is_empty() {
                p.quiet { "No installation found." }
            } @else {
                (table(&found))
            }
            @if let Some(next) = next {
                p { a href=(next_link(&filter, &next)) { "Next page" } }
            }
        }
    };
    Ok(layout::page("Installations", &signed_in, Section::Installations, content).into_response())
}

/// A `select` of fixed choices, `current` selected.
fn select(
    name: &str,
    label: &str,
    any: &str,
    choices: &[&'static str],
    current: Option<&str>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { (any) }
                @for choice in choices {
                    option value=(choice) selected[current == Some(*choice)] { (choice) }
                }
            }
        }
    }
}

/// The next page of the same search.
fn next_link(filter: &InstallationFilter<'_>, after: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("app", filter.app_id),
        ("version", filter.version),
        ("platform", filter.platform),
        ("decision", filter.decision.map(Decision::as_str)),
        (
            "integrity",
            filter.integrity_level.map(IntegrityLevel::as_str),
        ),
    ] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.append_pair("after", after);
    format!("/console/installations?{}", query.finish())
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
