//! The telemetry series' counting half: what the control plane and the gateway observe,
//! counted per minute in memory and handed to the store by the audit writer once the minute
//! is over ([`medgate_store::TelemetryStore`]). A request costs one map update, never a write.
//!
//! Every part of an [`Observation`] is a `&'static str`: it can only come from medgate's own
//! fixed sets (decisions, reason codes, refusal kinds, platform names), never from a request,
//! so nothing a client sends reaches the series, and the number of distinct observations (and
//! so the memory a minute takes) is bounded by those sets.

use std::collections::HashMap;

use medgate_store::{TelemetryCount, TelemetrySeries};
use medgate_verify::UnixTime;

/// One decision or request outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Observation {
    series: TelemetrySeries,
    outcome: &'static str,
    reason: &'static str,
    platform: &'static str,
}

impl Observation {
    /// An attestation's decision, its first reason (the policy orders them by check) and the
    /// platform of its evidence (none when the evidence did not verify).
    pub fn attestation(
        decision: &'static str,
        reason: Option<&'static str>,
        platform: Option<&'static str>,
    ) -> Self {
        Observation {
            series: TelemetrySeries::Attestation,
            outcome: decision,
            reason: reason.unwrap_or(""),
            platform: platform.unwrap_or(""),
        }
    }

    /// A gateway request's outcome (`forwarded`, or a refusal) and the verifier's reason code.
    pub fn gateway(outcome: &'static str, reason: Option<&'static str>) -> Self {
        Observation {
            series: TelemetrySeries::Gateway,
            outcome,
            reason: reason.unwrap_or(""),
            platform: "",
        }
    }
}

/// Observations counted per minute until the writer takes them.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// (minute number, observation) → count.
    by_minute: HashMap<(i64, Observation), u64>,
}

impl Counts {
    pub(crate) fn add(&mut self, minute: i64, observation: Observation) {
        *self.by_minute.entry((minute, observation)).or_insert(0) += 1;
    }

    /// The counts of every minute before `before` (all of them with `None`), removed, in one
    /// order whatever the map's.
    pub(crate) fn drain(&mut self, before: Option<i64>) -> Vec<TelemetryCount> {
        let done = |minute: i64| before.is_none_or(|before| minute < before);
        let finished: Vec<(i64, Observation)> = self
            .by_minute
            .keys()
            .filter(|(minute, _)| done(*minute))
            .copied()
            .collect();
        let mut counts: Vec<TelemetryCount> = finished
            .into_iter()
            .filter_map(|key| {
                let count = self.by_minute.remove(&key)?;
                let (minute, observation) = key;
                Some(TelemetryCount {
                    at: UnixTime::from_secs(minute * 60),
                    series: observation.series,
                    outcome: observation.outcome.into(),
                    reason: observation.reason.into(),
                    platform: observation.platform.into(),
                    count,
                })
            })
            .collect();
        counts.sort_by(|a, b| {
            (a.at, a.series, &a.outcome, &a.reason, &a.platform).cmp(&(
                b.at,
                b.series,
                &b.outcome,
                &b.reason,
                &b.platform,
            ))
        });
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_taken_once_their_minute_is_over() {
        let mut counts = Counts::default();
        let allowed = Observation::attestation("allow", None, Some("sdk"));
        let refused = Observation::gateway("invalid_token", Some("token_expired"));
        counts.add(100, allowed);
        counts.add(100, allowed);
        counts.add(100, refused);
        counts.add(101, allowed);
        let taken = counts.drain(Some(101));
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].at, UnixTime::from_secs(6000));
        assert_eq!(
            (
                taken[0].outcome.as_str(),
                taken[0].platform.as_str(),
                taken[0].count
            ),
            ("allow", "sdk", 2)
        );
        assert_eq!(
            (
                taken[1].outcome.as_str(),
                taken[1].reason.as_str(),
                taken[1].count
            ),
            ("invalid_token", "token_expired", 1)
        );
        // The running minute stays until it is over, or until the end.
        assert!(counts.drain(Some(101)).is_empty());
        assert_eq!(counts.drain(None).len(), 1);
        assert!(counts.drain(None).is_empty());
    }
}
