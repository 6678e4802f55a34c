//! What is worth an alert, decided from what the store holds: no I/O, no clock. Each alert has
//! a key; the same key is sent once.
//!
//! - `threat.spike`: in a minute, at least `threshold` attestations refused or limited for a
//!   threat (a runtime signal: debugger, hook, injected library, root, emulator, tamper,
//!   man-in-the-middle), and at least `factor` times the hour before's average per minute.
//! - `threat.new_kind`: a threat (reason and platform) seen now and not in the history read
//!   before it.
//! - `release.revoked_in_use`: a revoked release that installations are still in use on (not
//!   revoked, granted at their last attestation with it; once a day while it lasts).
//! - `audit.chain_broken`: an entry that does not verify; `audit.checkpoint_missing`: the
//!   chain no longer holds the latest signed checkpoint's entry (cut off or rewritten).

use std::collections::{BTreeMap, BTreeSet};

use medgate_proto::admin::{
    Release, TelemetryCount, TelemetrySeries, releases_by_version, version_revoked_at,
};
use medgate_proto::wire::SignalKind;
use serde_json::json;

/// An alert: its type, the key that makes it this alert, and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: &'static str,
    pub key: String,
    pub data: serde_json::Value,
}

/// When a minute's threats are a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpikeRule {
    pub threshold: u64,
    pub factor: u64,
}

/// Whether a reason code is a runtime threat's.
pub fn is_threat(reason: &str) -> bool {
    SignalKind::ALL
        .iter()
        .any(|kind| kind.reason().as_str() == reason)
}

fn threats(counts: &[TelemetryCount]) -> impl Iterator<Item = &TelemetryCount> {
    counts.iter().filter(|count| {
        count.series == TelemetrySeries::Attestation
            && count.outcome != "allow"
            && is_threat(&count.reason)
    })
}

/// Spikes among `window` (counts per minute), against `baseline` (the counts of the
/// `baseline_minutes` before the window, in any periods).
pub fn spikes(
    window: &[TelemetryCount],
    baseline: &[TelemetryCount],
    baseline_minutes: u64,
    rule: SpikeRule,
) -> Vec<Alert> {
    let usual = threats(baseline).fold(0u64, |sum, count| sum.saturating_add(count.count));
    let per_minute = usual / baseline_minutes.max(1);
    let mut minutes: BTreeMap<i64, Vec<&TelemetryCount>> = BTreeMap::new();
    for count in threats(window) {
        minutes.entry(count.at.secs()).or_default().push(count);
    }
    minutes
        .into_iter()
        .filter_map(|(minute, counts)| {
            let total = counts
                .iter()
                .fold(0u64, |sum, count| sum.saturating_add(count.count));
            (total >= rule.threshold && total >= rule.factor.saturating_mul(per_minute)).then(
                || Alert {
                    kind: "threat.spike",
                    key: format!("threat.spike:{minute}"),
                    data: json!({
                        "minute": minute,
                        "threats": total,
                        "usual_per_minute": per_minute,
                        "by_reason": counts.iter().map(|count| json!({
                            "reason": count.reason,
                            "platform": count.platform,
                            "decision": count.outcome,
                            "count": count.count,
                        })).collect::<Vec<_>>(),
                    }),
                },
            )
        })
        .collect()
}

/// Threats in `window` whose (reason, platform) `history` does not hold.
pub fn new_kinds(window: &[TelemetryCount], history: &[TelemetryCount]) -> Vec<Alert> {
    let known: BTreeSet<(&str, &str)> = threats(history)
        .map(|count| (count.reason.as_str(), count.platform.as_str()))
        .collect();
    let mut first: BTreeMap<(&str, &str), (i64, u64)> = BTreeMap::new();
    for count in threats(window) {
        let key = (count.reason.as_str(), count.platform.as_str());
        if known.contains(&key) {
            continue;
        }
        let seen = first.entry(key).or_insert((count.at.secs(), 0));
        seen.0 = seen.0.min(count.at.secs());
        seen.1 = seen.1.saturating_add(count.count);
    }
    first
        .into_iter()
        .map(|((reason, platform), (minute, count))| Alert {
            kind: "threat.new_kind",
            // With its first minute: a kind that comes back after a quiet week is new again.
            key: format!("threat.new_kind:{reason}:{platform}:{minute}"),
            data: json!({
                "reason": reason,
                "platform": platform,
                "first_minute": minute,
                "count": count,
            }),
        })
        .collect()
}

/// An app's revoked releases that installations are still on, keyed per `day`.
pub fn revoked_in_use(
    app_id: &str,
    releases: &[Release],
    on_version: &[(String, u64)],
    day: i64,
) -> Vec<Alert> {
    releases_by_version(releases)
        .into_iter()
        .filter_map(|(version, builds)| {
            let revoked_at = version_revoked_at(&builds)?;
            let installations = on_version
                .iter()
                .find(|(on, _)| on == version)
                .map_or(0, |(_, count)| *count);
            (installations > 0).then(|| Alert {
                kind: "release.revoked_in_use",
                key: format!("release.revoked_in_use:{app_id}:{version}:{day}"),
                data: json!({
                    "app_id": app_id,
                    "version": version,
                    "revoked_at": revoked_at,
                    "installations": installations,
                }),
            })
        })
        .collect()
}

/// The audit chain does not verify at `seq`.
pub fn chain_broken(seq: i64, problem: &str) -> Alert {
    Alert {
        kind: "audit.chain_broken",
        key: format!("audit.chain_broken:{seq}"),
        data: json!({ "seq": seq, "problem": problem }),
    }
}

/// The chain verifies but no longer holds the checkpoint's entry `seq`.
pub fn checkpoint_missing(seq: i64) -> Alert {
    Alert {
        kind: "audit.checkpoint_missing",
        key: format!("audit.checkpoint_missing:{seq}"),
        data: json!({ "checkpoint_seq": seq }),
    }
}

#[cfg(test)]
mod tests {
    use medgate_proto::time::UnixTime;

    use super::*;

    fn count(at: i64, outcome: &str, reason: &str, platform: &str, n: u64) -> TelemetryCount {
        TelemetryCount {
            at: UnixTime::from_secs(at),
            series: TelemetrySeries::Attestation,
            outcome: outcome.into(),
            reason: reason.into(),
            platform: platform.into(),
            count: n,
        }
    }

    const RULE: SpikeRule = SpikeRule {
        threshold: 5,
        factor: 3,
    };

    #[test]
    fn a_spike_is_many_threats_and_many_more_than_usual() {
        let window = [
            count(120, "reject", "hook_detected", "sdk", 4),
            count(120, "allow_limited", "root_detected", "android", 2),
            // Not threats: a release problem, an allowed attestation.
            count(180, "reject", "release_unknown", "sdk", 50),
            count(180, "allow", "", "sdk", 50),
            count(240, "reject", "hook_detected", "sdk", 4),
        ];
        let alerts = spikes(&window, &[], 60, RULE);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].key, "threat.spike:120");
        assert_eq!(alerts[0].data["threats"], 6);
        assert_eq!(alerts[0].data["by_reason"].as_array().unwrap().len(), 2);
        // Usual for this deployment: 2 a minute over the hour; 6 is exactly three times that.
        let usual = [count(0, "reject", "hook_detected", "sdk", 120)];
        assert_eq!(spikes(&window, &usual, 60, RULE).len(), 1);
        let busier = [count(0, "reject", "hook_detected", "sdk", 180)];
        assert!(spikes(&window, &busier, 60, RULE).is_empty());
    }

    #[test]
    fn a_new_kind_is_one_the_history_has_not_seen() {
        let window = [
            count(120, "reject", "hook_detected", "sdk", 1),
            count(180, "reject", "hook_detected", "sdk", 2),
            count(180, "reject", "hook_detected", "ios", 1),
            count(180, "reject", "app_unknown", "sdk", 9),
        ];
        let history = [count(0, "reject", "hook_detected", "ios", 7)];
        let alerts = new_kinds(&window, &history);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].key, "threat.new_kind:hook_detected:sdk:120");
        assert_eq!(alerts[0].data["first_minute"], 120);
        assert_eq!(alerts[0].data["count"], 3);
    }

    #[test]
    fn a_revoked_release_in_use_is_one_with_every_build_revoked_and_installations_on_it() {
        let release = |version: &str, revoked: Option<i64>| Release {
            app_id: "app".into(),
            version: version.into(),
            binary_sha256: None,
            version_code: None,
            created_at: UnixTime::from_secs(0),
            revoked_at: revoked.map(UnixTime::from_secs),
        };
        let releases = [
            release("1.0", Some(10)),
            release("1.1", Some(10)),
            release("1.1", None),
            release("2.0", Some(10)),
        ];
        let on = [("1.0".to_string(), 3), ("1.1".to_string(), 5)];
        let alerts = revoked_in_use("app", &releases, &on, 7);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].key, "release.revoked_in_use:app:1.0:7");
        assert_eq!(alerts[0].data["installations"], 3);
    }
}
