//! Prometheus metrics for the control and data planes, served at the server's `/metrics`.
//! Labels are closed sets (decisions, reason codes, outcomes): never ids, never request data.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Label = [(&'static str, &'static str); 1];

/// Every metric medgate exports.
pub struct Metrics {
    registry: Registry,
    attestations: Family<Label, Counter>,
    attestation_reasons: Family<Label, Counter>,
    challenges: Counter,
    gateway_requests: Family<Label, Counter>,
    gateway_check_seconds: Histogram,
    upstream_seconds: Histogram,
    token_cache: Family<Label, Counter>,
    shared_state: Family<Label, Counter>,
    audit_dropped: Counter,
    admin_changes: Family<Label, Counter>,
    partner_tokens: Family<Label, Counter>,
    tunnel_dropped: Counter,
    console_sign_ins: Family<Label, Counter>,
    alerts: Family<[(&'static str, &'static str); 2], Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("medgate");
        let attestations = Family::<Label, Counter>::default();
        registry.register(
            "attestations",
            "Attestation decisions, by decision",
            attestations.clone(),
        );
        let attestation_reasons = Family::<Label, Counter>::default();
        registry.register(
            "attestation_reasons",
            "Reason codes given with attestation decisions",
            attestation_reasons.clone(),
        );
        let challenges = Counter::default();
        registry.register("challenges_issued", "Challenges issued", challenges.clone());
        let gateway_requests = Family::<Label, Counter>::default();
        registry.register(
            "gateway_requests",
            "Gateway requests, by outcome",
            gateway_requests.clone(),
        );
        // 10 µs .. ~80 ms.
        let gateway_check_seconds = Histogram::new(exponential_buckets(1e-5, 2.0, 14));
        registry.register(
            "gateway_check_seconds",
            "Time the gateway spends verifying a request before forwarding or refusing it",
            gateway_check_seconds.clone(),
        );
        // 100 µs .. ~26 s.
        let upstream_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 19));
        registry.register(
            "gateway_upstream_seconds",
            "Time until the upstream's response headers arrive",
            upstream_seconds.clone(),
        );
        let token_cache = Family::<Label, Counter>::default();
        registry.register(
            "gateway_token_cache",
            "Verified-token cache lookups, by result",
            token_cache.clone(),
        );
        let shared_state = Family::<Label, Counter>::default();
        registry.register(
            "gateway_shared_state",
            "Shared replay and rate checks (Redis), by result",
            shared_state.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_dropped",
            "Audit entries summarised instead of written because the writer was saturated",
            audit_dropped.clone(),
        );
        let admin_changes = Family::<Label, Counter>::default();
        registry.register(
            "admin_changes",
            "Admin changes, by kind",
            admin_changes.clone(),
        );
        let partner_tokens = Family::<Label, Counter>::default();
        registry.register(
            "partner_tokens",
            "Partner backends' token requests, by outcome (issued, or the RFC 6749 error code)",
            partner_tokens.clone(),
        );
        let console_sign_ins = Family::<Label, Counter>::default();
        registry.register(
            "console_sign_ins",
            "Console sign-in attempts, by outcome (signed_in, refused)",
            console_sign_ins.clone(),
        );
        let alerts = Family::<[(&'static str, &'static str); 2], Counter>::default();
        registry.register(
            "alerts",
            "Alerts sent to the webhook, by kind and outcome (delivered, failed)",
            alerts.clone(),
        );
        let tunnel_dropped = Counter::default();
        registry.register(
            "gateway_tunnel_dropped_packets",
            "socket.io packets a tunnel route dropped (writes and alarm acks the subject may not send, packets it could not read)",
            tunnel_dropped.clone(),
        );
        Metrics {
            registry,
            attestations,
            attestation_reasons,
            challenges,
            gateway_requests,
            gateway_check_seconds,
            upstream_seconds,
            token_cache,
            shared_state,
            audit_dropped,
            admin_changes,
            partner_tokens,
            tunnel_dropped,
            console_sign_ins,
            alerts,
        }
    }

    pub fn attestation(
        &self,
        decision: &'static str,
        reasons: impl IntoIterator<Item = &'static str>,
    ) {
        self.attestations
            .get_or_create(&[("decision", decision)])
            .inc();
        for reason in reasons {
            self.attestation_reasons
                .get_or_create(&[("reason", reason)])
                .inc();
        }
    }

    pub fn challenge_issued(&self) {
        self.challenges.inc();
    }

    pub fn gateway_request(&self, outcome: &'static str) {
        self.gateway_requests
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub fn gateway_check(&self, seconds: f64) {
        self.gateway_check_seconds.observe(seconds);
    }

    pub fn upstream(&self, seconds: f64) {
        self.upstream_seconds.observe(seconds);
    }

    pub fn token_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.token_cache.get_or_create(&[("result", result)]).inc();
    }

    pub fn shared_state(&self, result: &'static str) {
        self.shared_state.get_or_create(&[("result", result)]).inc();
    }

    pub fn audit_dropped(&self, count: u64) {
        self.audit_dropped.inc_by(count);
    }

    pub fn tunnel_dropped(&self, count: u64) {
        self.tunnel_dropped.inc_by(count);
    }

    pub fn partner_token(&self, outcome: &'static str) {
        self.partner_tokens
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub fn console_sign_in(&self, signed_in: bool) {
        let outcome = if signed_in { "signed_in" } else { "refused" };
        self.console_sign_ins
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub fn alert(&self, kind: &'static str, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.alerts
            .get_or_create(&[("kind", kind), ("outcome", outcome)])
            .inc();
    }

    pub fn admin_change(&self, kind: &'static str) {
        self.admin_changes.get_or_create(&[("kind", kind)]).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_their_labels() {
        let metrics = Metrics::new();
        metrics.attestation("reject", ["hook_detected", "debugger_detected"]);
        metrics.gateway_request("forwarded");
        metrics.gateway_request("forwarded");
        metrics.gateway_check(0.00005);
        let text = metrics.render();
        assert!(
            text.contains(r#"medgate_attestations_total{decision="reject"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"medgate_attestation_reasons_total{reason="hook_detected"} 1"#));
        assert!(text.contains(r#"medgate_gateway_requests_total{outcome="forwarded"} 2"#));
        assert!(text.contains("medgate_gateway_check_seconds_count 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
