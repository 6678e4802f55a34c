//! The overview: attestations and gateway requests over a range, and the reasons behind
//! refusals, from the telemetry series (no scan of the audit log).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use medgate_proto::admin::{TelemetryCount, TelemetrySeries};
use medgate_proto::time::UnixTime;

use super::chart::{self, Stack};
use super::layout::{self, Section};
use super::{ConsoleError, SignedIn};
use crate::ServerState;
use crate::admin::Query;

/// The ranges offered: (name, period, periods). Each period is a whole number of hours from
/// a day up, so the store reads the hourly sums there.
const RANGES: [(&str, i64, usize); 4] = [
    ("1h", 60, 60),
    ("24h", 3600, 24),
    ("7d", 6 * 3600, 28),
    ("30d", 86_400, 30),
];

#[derive(serde::Deserialize)]
pub(super) struct OverviewQuery {
    range: Option<String>,
}

/// Rows shown in each reason table.
const TOP: usize = 10;

/// `GET /console?range=1h|24h|7d|30d` (24 hours unless said).
pub(super) async fn page(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    Query(query): Query<OverviewQuery>,
) -> Result<Response, ConsoleError> {
    let asked = query.range.as_deref().unwrap_or("24h");
    let (range, step, periods) = RANGES
        .into_iter()
        .find(|(name, _, _)| *name == asked)
        .ok_or(ConsoleError::BadRequest(
            "the range is one of 1h, 24h, 7d, 30d",
        ))?;
    // Whole periods, the last one holding now.
    let now = state.clock.now().secs();
    let to = (now.div_euclid(step) + 1) * step;
    let from = to - step * periods as i64;
    let counts = state
        .store
        .telemetry(UnixTime::from_secs(from), UnixTime::from_secs(to), step)
        .await?;
    let in_use = state
        .store
        .installations_in_use_since(UnixTime::from_secs(from))
        .await?;
    let starts: Vec<i64> = (0..periods).map(|i| from + step * i as i64).collect();
    let per_period = |series: TelemetrySeries, keep: &dyn Fn(&TelemetryCount) -> bool| {
        let mut values = vec![0u64; periods];
        for count in counts.iter().filter(|c| c.series == series && keep(c)) {
            if let Ok(i) = usize::try_from((count.at.secs() - from) / step)
                && let Some(slot) = values.get_mut(i)
            {
                *slot = slot.saturating_add(count.count);
            }
        }
        values
    };
    let decision = |outcome: &'static str| move |count: &TelemetryCount| count.outcome == outcome;
    let attestations = chart::stacked_bars(
        "Attestations by decision",
        &starts,
        step,
        &[
            Stack {
                label: "allowed",
                class: "s-allow",
                values: per_period(TelemetrySeries::Attestation, &decision("allow")),
            },
            Stack {
                label: "limited",
                class: "s-limited",
                values: per_period(TelemetrySeries::Attestation, &decision("allow_limited")),
            },
            Stack {
                label: "rejected",
                class: "s-reject",
                values: per_period(TelemetrySeries::Attestation, &decision("reject")),
            },
        ],
    );
    let gateway = chart::stacked_bars(
        "Gateway requests",
        &starts,
        step,
        &[
            Stack {
                label: "forwarded",
                class: "s-allow",
                values: per_period(TelemetrySeries::Gateway, &decision("forwarded")),
            },
            Stack {
                label: "refused",
                class: "s-reject",
                values: per_period(TelemetrySeries::Gateway, &|count| {
                    count.outcome != "forwarded"
                }),
            },
        ],
    );
    // Why attestations were refused or limited (threats among them), by platform; why the
    // gateway refused requests.
    let attestation_reasons = top(
        counts.iter().filter(|c| {
            c.series == TelemetrySeries::Attestation && c.outcome != "allow" && !c.reason.is_empty()
        }),
        |c| (c.reason.clone(), c.platform.clone(), c.outcome.clone()),
    );
    let gateway_refusals = top(
        counts
            .iter()
            .filter(|c| c.series == TelemetrySeries::Gateway && c.outcome != "forwarded"),
        |c| (c.outcome.clone(), c.reason.clone(), String::new()),
    );
    let content = html! {
        nav.ranges aria-label="Range" {
            @for (name, _, _) in RANGES {
                a href=(format!("/console?range={name}"))
                    aria-current=[(name == range).then_some("page")] { (name) }
            }
        }
        p.stat {
            strong { (in_use) } " installations in use, seen in this range (not revoked, granted at their last attestation)"
        }
        div.charts {
            (attestations)
            (gateway)
        }
        section {
            h2 { "Why attestations were rejected or limited" }
            @if attestation_reasons.is_empty() {
                p.quiet { "None in this range." }
            } @else {
                table {
                    thead { tr { th { "Reason" } th { "Platform" } th { "Decision" } th.n { "Count" } } }
                    tbody {
                        @for ((reason, platform, outcome), count) in &attestation_reasons {
                            tr { td { (reason) } td { (platform) } td { (outcome) } td.n { (count) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Why the gateway refused requests" }
            @if gateway_refusals.is_empty() {
                p.quiet { "None in this range." }
            } @else {
                table {
                    thead { tr { th { "Refusal" } th { "Reason" } th.n { "Count" } } }
                    tbody {
                        @for ((outcome, reason, _), count) in &gateway_refusals {
                            tr { td { (outcome) } td { (reason) } td.n { (count) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Overview", &signed_in, Section::Overview, content).into_response())
}

/// The `TOP` keys with the largest sums, largest first (ties by key).
fn top<'a>(
    counts: impl Iterator<Item = &'a TelemetryCount>,
    key: impl Fn(&TelemetryCount) -> (String, String, String),
) -> Vec<((String, String, String), u64)> {
    let mut sums: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for count in counts {
        let sum = sums.entry(key(count)).or_default();
        *sum = sum.saturating_add(count.count);
    }
    let mut sorted: Vec<_> = sums.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.truncate(TOP);
    sorted
}
