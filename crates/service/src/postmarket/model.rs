//! The postmarket figures, computed from the audit log (read once, in order) and the store's
//! releases and installations. No I/O and no clock: everything comes in as arguments.
//!
//! - **Attestations** in the period `[from, to)`: by decision, per UTC day, the reasons given
//!   and the threats reported (signal kind × platform).
//! - **Adoption of each release** (the FDA's "time from patch availability to deployment"):
//!   from the moment the release was registered (`T0`), the population is the app's
//!   installations granted at least once since `T0` (up to `to`); a release's adoption at `t`
//!   is the share of them granted on it by `t`. The times to 50 % and 90 % are measured from
//!   `T0`; none while the share is not reached.
//! - **Revoked releases still in use**: installations, not revoked, whose last attestation was
//!   on a revoked release.
//! - **Revocations** in the period: installations and releases.

use std::collections::{BTreeMap, HashMap};

use medgate_store::{AuditEntry, Installation, Release};
use serde::Serialize;

/// Attestations by decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub allow: u64,
    pub allow_limited: u64,
    pub reject: u64,
}

impl Outcomes {
    pub fn total(&self) -> u64 {
        self.allow + self.allow_limited + self.reject
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Threat {
    pub kind: String,
    pub platform: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adoption {
    pub app_id: String,
    pub version: String,
    pub registered_at: i64,
    pub revoked_at: Option<i64>,
    /// Installations granted since the release was registered (the denominator).
    pub population: u64,
    /// Of those, granted on this release by the end of the report.
    pub adopted: u64,
    pub seconds_to_50_percent: Option<i64>,
    pub seconds_to_90_percent: Option<i64>,
    /// Installations (not revoked) whose last attestation was on it.
    pub on_it_now: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokedInUse {
    pub app_id: String,
    pub version: String,
    pub installations: u64,
    /// The first few installation ids, for follow-up.
    pub sample: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRevocation {
    pub app_id: String,
    pub version: String,
    pub at: i64,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Postmarket {
    pub from: i64,
    pub to: i64,
    pub attestations: Outcomes,
    /// (start of the UTC day, its attestations), in order.
    pub per_day: Vec<(i64, Outcomes)>,
    /// Reasons given, most frequent first.
    pub reasons: Vec<(String, u64)>,
    pub threats: Vec<Threat>,
    pub releases: Vec<Adoption>,
    pub revoked_in_use: Vec<RevokedInUse>,
    pub installations_revoked: u64,
    pub releases_revoked: Vec<ReleaseRevocation>,
}

/// Installation ids listed per revoked release.
const SAMPLE: usize = 20;
const DAY: i64 = 86_400;

/// The days from the first to the last with attestations, those without any included (so the
/// chart's axis is time), when they are at most ten years apart.
fn every_day(counted: BTreeMap<i64, Outcomes>) -> Vec<(i64, Outcomes)> {
    let (Some(first), Some(last)) = (counted.keys().next(), counted.keys().next_back()) else {
        return Vec::new();
    };
    if last.saturating_sub(*first) > 3660 * DAY {
        return counted.into_iter().collect();
    }
    (0..=(last - first) / DAY)
        .map(|n| {
            let day = first + n * DAY;
            (day, counted.get(&day).copied().unwrap_or_default())
        })
        .collect()
}

/// Takes the audit log's entries in seq order (all of them up to `to`: adoption needs what
/// came before the period), then [`Builder::finish`] with the store's state.
pub struct Builder {
    /// `None`: from the first entry on.
    from: Option<i64>,
    first_at: Option<i64>,
    to: i64,
    attestations: Outcomes,
    per_day: BTreeMap<i64, Outcomes>,
    reasons: BTreeMap<String, u64>,
    threats: BTreeMap<(String, String), u64>,
    /// app → version → installation → first grant on it.
    first_on: HashMap<String, HashMap<String, HashMap<String, i64>>>,
    /// app → installation → last grant.
    last_grant: HashMap<String, HashMap<String, i64>>,
    installations_revoked: u64,
    releases_revoked: Vec<ReleaseRevocation>,
}

impl Builder {
    pub fn new(from: Option<i64>, to: i64) -> Builder {
        Builder {
            from,
            first_at: None,
            to,
            attestations: Outcomes::default(),
            per_day: BTreeMap::new(),
            reasons: BTreeMap::new(),
            threats: BTreeMap::new(),
            first_on: HashMap::new(),
            last_grant: HashMap::new(),
            installations_revoked: 0,
            releases_revoked: Vec::new(),
        }
    }

    /// One entry. The log's order is not quite the order of `at` (decisions are written in
    /// batches), so every entry is offered and those at or after `to` are left out.
    pub fn add(&mut self, entry: &AuditEntry) {
        let at = entry.at.secs();
        if at >= self.to {
            return;
        }
        self.first_at.get_or_insert(at);
        let in_period = self.from.is_none_or(|from| at >= from);
        let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
        match entry.kind.as_str() {
            "attest.allow" | "attest.allow_limited" | "attest.reject" => {
                // Evidence too broken to name its installation is still a refusal to count.
                if in_period {
                    self.count_attestation(&entry.kind, at, &detail);
                }
                let Some(installation) = entry.actor.strip_prefix("installation:") else {
                    return;
                };
                if entry.kind != "attest.reject" {
                    let version = detail["app_version"].as_str().unwrap_or_default();
                    self.first_on
                        .entry(entry.subject.clone())
                        .or_default()
                        .entry(version.to_string())
                        .or_default()
                        .entry(installation.to_string())
                        .or_insert(at);
                    let last = self
                        .last_grant
                        .entry(entry.subject.clone())
                        .or_default()
                        .entry(installation.to_string())
                        .or_insert(at);
                    *last = (*last).max(at);
                }
            }
            // Only what changed counts: revoking again is audited, but revokes nothing.
            "admin.installation.revoke" if in_period && detail["newly_revoked"] == true => {
                self.installations_revoked += 1;
            }
            "admin.release.revoke"
                if in_period && detail["revoked"].as_u64().is_some_and(|n| n > 0) =>
            {
                self.releases_revoked.push(ReleaseRevocation {
                    app_id: entry.subject.clone(),
                    version: detail["version"].as_str().unwrap_or_default().to_string(),
                    at,
                });
            }
            _ => {}
        }
    }

    fn count_attestation(&mut self, kind: &str, at: i64, detail: &serde_json::Value) {
        let day = self
            .per_day
            .entry(at.div_euclid(DAY).saturating_mul(DAY))
            .or_default();
        for outcomes in [&mut self.attestations, day] {
            match kind {
                "attest.allow" => outcomes.allow += 1,
                "attest.allow_limited" => outcomes.allow_limited += 1,
                _ => outcomes.reject += 1,
            }
        }
        let texts = |member: &str| -> Vec<String> {
            detail[member]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for reason in texts("reasons") {
            *self.reasons.entry(reason).or_default() += 1;
        }
        let platform = detail["platform"].as_str().unwrap_or_default().to_string();
        for signal in texts("signals") {
            *self.threats.entry((signal, platform.clone())).or_default() += 1;
        }
    }

    pub fn finish(self, releases: &[Release], installations: &[Installation]) -> Postmarket {
        // One row per (app, version): a version may have several binaries.
        let mut versions: BTreeMap<(String, String), (i64, Option<i64>)> = BTreeMap::new();
        for release in releases {
            let row = versions
                .entry((release.app_id.clone(), release.version.clone()))
                .or_insert((release.created_at.secs(), None));
            row.0 = row.0.min(release.created_at.secs());
            row.1 = row.1.or(release.revoked_at.map(|at| at.secs()));
        }
        // Live installations per (app, version), once.
        let mut on_version: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        for installation in installations.iter().filter(|i| i.revoked_at.is_none()) {
            on_version
                .entry((
                    installation.app_id.as_str(),
                    installation.app_version.as_str(),
                ))
                .or_default()
                .push(installation.id.as_str());
        }
        let none = HashMap::new();
        let adoption = versions
            .iter()
            .map(|((app, version), (registered_at, revoked_at))| {
                let last_grant = self.last_grant.get(app).unwrap_or(&none);
                let active = |installation: &String| {
                    last_grant
                        .get(installation)
                        .is_some_and(|last| last >= registered_at)
                };
                let population = last_grant.keys().filter(|i| active(i)).count() as u64;
                let mut adopted: Vec<i64> = self
                    .first_on
                    .get(app)
                    .and_then(|versions| versions.get(version))
                    .map(|firsts| {
                        firsts
                            .iter()
                            .filter(|(installation, _)| active(installation))
                            .map(|(_, at)| (*at).max(*registered_at))
                            .collect()
                    })
                    .unwrap_or_default();
                adopted.sort_unstable();
                let reached = |share: u64| {
                    let needed = (population * share).div_ceil(100);
                    (population > 0 && adopted.len() as u64 >= needed)
                        .then(|| adopted[needed.max(1) as usize - 1].saturating_sub(*registered_at))
                };
                Adoption {
                    app_id: app.clone(),
                    version: version.clone(),
                    registered_at: *registered_at,
                    revoked_at: *revoked_at,
                    population,
                    adopted: adopted.len() as u64,
                    seconds_to_50_percent: reached(50),
                    seconds_to_90_percent: reached(90),
                    on_it_now: on_version
                        .get(&(app.as_str(), version.as_str()))
                        .map_or(0, |ids| ids.len() as u64),
                }
            })
            .collect();
        let revoked_in_use = versions
            .iter()
            .filter(|(_, (_, revoked_at))| revoked_at.is_some())
            .filter_map(|((app, version), _)| {
                let on_it = on_version.get(&(app.as_str(), version.as_str()))?;
                Some(RevokedInUse {
                    app_id: app.clone(),
                    version: version.clone(),
                    installations: on_it.len() as u64,
                    sample: on_it.iter().take(SAMPLE).map(|id| id.to_string()).collect(),
                })
            })
            .collect();
        let mut reasons: Vec<(String, u64)> = self.reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut threats: Vec<Threat> = self
            .threats
            .into_iter()
            .map(|((kind, platform), count)| Threat {
                kind,
                platform,
                count,
            })
            .collect();
        threats.sort_by_key(|threat| std::cmp::Reverse(threat.count));
        Postmarket {
            from: self.from.or(self.first_at).unwrap_or(self.to),
            to: self.to,
            attestations: self.attestations,
            per_day: every_day(self.per_day),
            reasons,
            threats,
            releases: adoption,
            revoked_in_use,
            installations_revoked: self.installations_revoked,
            releases_revoked: self.releases_revoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgate_proto::wire::Decision;
    use medgate_store::audit::{NewAuditEntry, seal_entry};
    use medgate_verify::UnixTime;

    const T0: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn entry(
        seq: i64,
        at: i64,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> AuditEntry {
        seal_entry(
            &NewAuditEntry {
                at: UnixTime::from_secs(at),
                kind: kind.into(),
                actor: actor.into(),
                subject: subject.into(),
                detail,
            },
            seq,
            [0; 32],
        )
    }

    fn attest(seq: i64, at: i64, decision: &str, installation: &str, version: &str) -> AuditEntry {
        let reasons: Vec<&str> = if decision == "reject" {
            vec!["hook_detected"]
        } else {
            vec![]
        };
        let signals: Vec<&str> = if decision == "reject" {
            vec!["hook"]
        } else {
            vec![]
        };
        entry(
            seq,
            at,
            &format!("attest.{decision}"),
            &format!("installation:{installation}"),
            "org.example.cgm",
            serde_json::json!({"decision": decision, "reasons": reasons, "app_version": version,
                "platform": "sdk", "signals": signals}),
        )
    }

    fn release(version: &str, created: i64, revoked: Option<i64>) -> Release {
        Release {
            app_id: "org.example.cgm".into(),
            version: version.into(),
            binary_sha256: None,
            version_code: None,
            created_at: UnixTime::from_secs(created),
            revoked_at: revoked.map(UnixTime::from_secs),
        }
    }

    fn installation(id: &str, version: &str, revoked: bool) -> Installation {
        Installation {
            id: id.into(),
            app_id: "org.example.cgm".into(),
            platform: "sdk".into(),
            app_version: version.into(),
            first_seen: UnixTime::from_secs(T0),
            last_seen: UnixTime::from_secs(T0),
            last_decision: Decision::Allow,
            last_reasons: vec![],
            revoked_at: revoked.then_some(UnixTime::from_secs(T0)),
            integrity_level: None,
            hardware_key: false,
            identity: None,
        }
    }

    /// Ten installations on 1.0; 1.1 is registered at T0 + 1 day; they move over one per hour,
    /// except two that never do. 50 % is reached at the fifth move, 90 % never (8 of 10).
    #[test]
    fn adoption_times_are_measured_from_the_release() {
        let day = 86_400;
        let mut builder = Builder::new(Some(T0), T0 + 30 * day);
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq
        };
        for n in 0..10 {
            builder.add(&attest(next(), T0 + n, "allow", &format!("i{n}"), "1.0"));
        }
        let released = T0 + day;
        for n in 0..10 {
            // Everyone is granted again after the release (on 1.0 at first).
            builder.add(&attest(
                next(),
                released + 10 + n,
                "allow",
                &format!("i{n}"),
                "1.0",
            ));
        }
        for n in 0..8 {
            builder.add(&attest(
                next(),
                released + (n + 1) * HOUR,
                "allow",
                &format!("i{n}"),
                "1.1",
            ));
        }
        builder.add(&attest(next(), released + 9 * HOUR, "reject", "i9", "1.0"));
        builder.add(&entry(
            next(),
            released + 10 * HOUR,
            "admin.release.revoke",
            "admin",
            "org.example.cgm",
            serde_json::json!({"version": "1.0", "revoked": 1}),
        ));
        // Revoked, then revoked again (audited, but nothing changed); a release revoked again.
        for newly in [true, false] {
            builder.add(&entry(
                next(),
                released + 11 * HOUR,
                "admin.installation.revoke",
                "admin",
                "i7",
                serde_json::json!({"newly_revoked": newly}),
            ));
        }
        builder.add(&entry(
            next(),
            released + 12 * HOUR,
            "admin.release.revoke",
            "admin",
            "org.example.cgm",
            serde_json::json!({"version": "1.0", "revoked": 0}),
        ));
        // Refused evidence that names no installation is still counted.
        builder.add(&entry(
            next(),
            released + 13 * HOUR,
            "attest.reject",
            "unknown",
            "org.example.cgm",
            serde_json::json!({"decision": "reject", "reasons": ["evidence_invalid"]}),
        ));
        // After `to`: not counted; an entry before it that comes later in the log still is.
        builder.add(&attest(next(), T0 + 31 * day, "allow", "i0", "1.1"));
        builder.add(&attest(next(), T0 + 3 * day, "allow", "i0", "1.1"));
        let installations: Vec<Installation> = (0..10)
            .map(|n| installation(&format!("i{n}"), if n < 8 { "1.1" } else { "1.0" }, n == 7))
            .collect();
        let report = builder.finish(
            &[
                release("1.0", T0 - day, Some(released + 10 * HOUR)),
                release("1.1", released, None),
            ],
            &installations,
        );
        assert_eq!(
            report.attestations,
            Outcomes {
                allow: 29,
                allow_limited: 0,
                reject: 2
            }
        );
        // Four days, the one without attestations included.
        assert_eq!(report.per_day.len(), 4);
        assert_eq!(report.per_day[2].1.total(), 0);
        assert_eq!(
            report.reasons,
            [
                ("evidence_invalid".to_string(), 1),
                ("hook_detected".to_string(), 1)
            ]
        );
        assert_eq!(
            report.threats,
            [Threat {
                kind: "hook".into(),
                platform: "sdk".into(),
                count: 1
            }]
        );
        let new = &report.releases[1];
        assert_eq!(
            (new.version.as_str(), new.population, new.adopted),
            ("1.1", 10, 8)
        );
        assert_eq!(new.seconds_to_50_percent, Some(5 * HOUR));
        assert_eq!(new.seconds_to_90_percent, None);
        // i7 was revoked: seven installations are on 1.1 now, two still on revoked 1.0.
        assert_eq!(new.on_it_now, 7);
        let old = &report.releases[0];
        // 1.0 was registered a day before the first grant: the fifth and ninth came 4 and 8 s later.
        assert_eq!(
            (old.seconds_to_50_percent, old.seconds_to_90_percent),
            (Some(day + 4), Some(day + 8))
        );
        assert_eq!(report.revoked_in_use.len(), 1);
        assert_eq!(report.revoked_in_use[0].installations, 2);
        assert_eq!(report.revoked_in_use[0].sample, ["i8", "i9"]);
        assert_eq!(report.installations_revoked, 1);
        assert_eq!(report.releases_revoked.len(), 1);
    }
}
