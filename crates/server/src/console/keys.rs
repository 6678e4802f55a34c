//! Keys, pins and secrets: names, versions, rotation and state, never a value. Read through
//! the same functions the admin API lists them with.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use medgate_proto::admin::RoleStatus;
use medgate_proto::time::UnixTime;
use medgate_service::clock::rfc3339;

use super::layout::{self, Section};
use super::{ConsoleError, SignedIn};
use crate::ServerState;

fn when(at: Option<UnixTime>) -> String {
    at.map(rfc3339).unwrap_or_default()
}

/// `GET /console/keys`.
pub(super) async fn page(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
) -> Result<Response, ConsoleError> {
    let keys = crate::admin::signing_keys(&state);
    let trust = crate::admin::trust_status(&state).await?;
    let pins = state.store.pins().await?;
    let partners = crate::admin::partners(&state).await?;
    let mut apps = Vec::new();
    for app in state.store.list_apps().await? {
        let secrets = crate::admin::app_secrets(&state, &app).await?;
        let credentials = crate::admin::app_credentials(&state, &app.id).await?;
        apps.push((app.id, secrets, credentials));
    }
    let roles: [(&str, &Option<RoleStatus>); 4] = [
        ("root", &trust.root),
        ("targets", &trust.targets),
        ("snapshot", &trust.snapshot),
        ("timestamp", &trust.timestamp),
    ];
    let content = html! {
        h2 { "Token-signing keys" }
        table {
            thead { tr { th { "Key id" } th { "Created" } th { "Retired" } th { "Signs" } th { "Published" } } }
            tbody {
                @for key in &keys {
                    tr {
                        td { code { (key.kid) } }
                        td { (rfc3339(key.created_at)) }
                        td { (when(key.retired_at)) }
                        td { (if key.active { "yes" } else { "no" }) }
                        td { (if key.published { "yes" } else { "no" }) }
                    }
                }
            }
        }
        h2 { "Pins (over-the-air, TUF)" }
        table {
            thead { tr { th { "Role" } th.n { "Version" } th { "Expires" } } }
            tbody {
                @for (name, role) in roles {
                    tr {
                        td { (name) }
                        @match role {
                            Some(role) => { td.n { (role.version) } td { (rfc3339(role.expires_at)) } },
                            None => { td.n { "—" } td { "not published" } },
                        }
                    }
                }
            }
        }
        @if let Some(managed) = &trust.managed_roots {
            p { "Managed roots for: " (managed.hosts.join(", ")) }
        }
        @if pins.is_empty() {
            p.quiet { "No pin is set." }
        } @else {
            table {
                thead { tr { th { "Host pattern" } th { "SPKI SHA-256" } th { "Added" } } }
                tbody {
                    @for pin in &pins {
                        tr { td { (pin.pattern) } td { code { (pin.pin) } } td { (rfc3339(pin.created_at)) } }
                    }
                }
            }
        }
        @for (app_id, secrets, credentials) in &apps {
            h2 { "Secrets and credentials of " (app_id) }
            @if secrets.is_empty() {
                p.quiet { "No operator secret." }
            } @else {
                table {
                    thead { tr { th { "Secret" } th.n { "Version" } th { "Updated" } th { "Injected by routes" } th { "Sealed to installations" } } }
                    tbody {
                        @for secret in secrets {
                            tr {
                                td { (secret.name) }
                                td.n { (secret.version) }
                                td { (rfc3339(secret.updated_at)) }
                                td { (secret.injected_by_routes.join(" ")) }
                                td { (if secret.sealed_to_installations { "yes" } else { "no" }) }
                            }
                        }
                    }
                }
            }
            @if credentials.is_empty() {
                p.quiet { "No follower or uploader credential." }
            } @else {
                table {
                    thead { tr { th { "Credential" } th { "Kind" } th { "Name" } th { "Scopes" } th { "State" } th { "Expires" } } }
                    tbody {
                        @for credential in credentials {
                            tr {
                                td { code { (credential.id) } }
                                td { (credential.kind.as_str()) }
                                td { (credential.name) }
                                td { (credential.scopes.join(" ")) }
                                td { (credential.state.as_str()) }
                                td { (when(credential.expires_at)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Partner backends" }
        @if partners.is_empty() {
            p.quiet { "No partner is registered." }
        } @else {
            table {
                thead { tr { th { "Client id" } th { "Name" } th { "Scopes" } th { "Keys rotated" } th { "State" } } }
                tbody {
                    @for partner in &partners {
                        tr {
                            td { code { (partner.id) } }
                            td { (partner.name) }
                            td { (partner.scopes.join(" ")) }
                            td { (when(partner.rotated_at)) }
                            td { (partner.state.as_str()) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Keys, pins and secrets", &signed_in, Section::Keys, content).into_response())
}
