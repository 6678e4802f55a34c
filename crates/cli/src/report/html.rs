//! The postmarket report as one static HTML page: no script, no external resource, the chart
//! an inline SVG drawn here, readable on a phone. Every text from the store is escaped.

use std::fmt::Write;

use medgate_service::postmarket::{Outcomes, Postmarket};

/// The audit chain the report was built from.
pub(crate) struct Provenance {
    pub head_seq: i64,
    pub head_hash: String,
    /// (seq, hash) of the latest signed checkpoint the chain contains, if any.
    pub checkpoint: Option<(i64, String)>,
    /// The first entry, when the entries before it were pruned (the figures lack them).
    pub pruned_before: Option<i64>,
    pub generated_at: i64,
    /// The components of the SBOM shipped beside the report, when there is one.
    pub sbom_components: Option<usize>,
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339, UTC, to the second (the service's formatting).
fn date(secs: i64) -> String {
    medgate_service::clock::rfc3339(medgate_verify::UnixTime::from_secs(secs))
}

fn duration(secs: Option<i64>) -> String {
    match secs {
        None => "not reached".into(),
        Some(secs) if secs < 3600 => format!("{} min", secs / 60),
        Some(secs) if secs < 86_400 * 2 => format!("{:.1} h", secs as f64 / 3600.0),
        Some(secs) => format!("{:.1} days", secs as f64 / 86_400.0),
    }
}

/// Attestations per day, stacked by decision: granted (green), limited (amber), refused (red).
pub(crate) fn chart(per_day: &[(i64, Outcomes)]) -> String {
    const HEIGHT: u64 = 120;
    const BAR: usize = 24;
    let most = per_day
        .iter()
        .map(|(_, o)| o.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = (per_day.len() * BAR).max(BAR);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {}\" width=\"100%\" role=\"img\" aria-label=\"attestations per day\">",
        HEIGHT + 16
    );
    for (index, (day, outcomes)) in per_day.iter().enumerate() {
        let x = index * BAR + 2;
        let mut top = HEIGHT;
        for (count, colour) in [
            (outcomes.allow, "#2e7d32"),
            (outcomes.allow_limited, "#f9a825"),
            (outcomes.reject, "#c62828"),
        ] {
            let height = count * HEIGHT / most;
            if height == 0 {
                continue;
            }
            top -= height;
            let day = date(*day);
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{top}\" width=\"{}\" height=\"{height}\" fill=\"{colour}\"><title>{}: {count}</title></rect>",
                BAR - 4,
                escape(day.get(..10).unwrap_or(&day))
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"10\">max {most} a day</text></svg>",
        HEIGHT + 12
    );
    svg
}

pub(crate) fn page(report: &Postmarket, provenance: &Provenance) -> String {
    let mut html = String::new();
    let a = &report.attestations;
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>medgate postmarket report</title><style>body{{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}}table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.3em;text-align:left}}code{{word-break:break-all}}</style></head><body><h1>Postmarket report</h1><p>From {} until {}; generated {}.</p>",
        escape(&date(report.from)),
        escape(&date(report.to)),
        escape(&date(provenance.generated_at))
    );
    let _ = write!(
        html,
        "<h2>Attestations</h2><p>{} in all: {} granted, {} limited, {} refused.</p>{}",
        a.total(),
        a.allow,
        a.allow_limited,
        a.reject,
        chart(&report.per_day)
    );
    html.push_str("<h2>Reasons given</h2><table><tr><th>Reason</th><th>Count</th></tr>");
    for (reason, count) in &report.reasons {
        let _ = write!(html, "<tr><td>{}</td><td>{count}</td></tr>", escape(reason));
    }
    html.push_str("</table><h2>Threats reported</h2><table><tr><th>Kind</th><th>Platform</th><th>Count</th></tr>");
    for threat in &report.threats {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&threat.kind),
            escape(&threat.platform),
            threat.count
        );
    }
    html.push_str("</table><h2>Releases in the field</h2><p>Adoption: of the app's installations granted since the release was registered, the share granted on it; times from registration (the FDA's time from patch availability to deployment).</p><table><tr><th>App</th><th>Version</th><th>Registered</th><th>Revoked</th><th>Adopted</th><th>To 50 %</th><th>To 90 %</th><th>On it now</th></tr>");
    for release in &report.releases {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&release.app_id),
            escape(&release.version),
            escape(&date(release.registered_at)),
            release
                .revoked_at
                .map_or_else(|| "no".to_string(), |at| escape(&date(at))),
            release.adopted,
            release.population,
            duration(release.seconds_to_50_percent),
            duration(release.seconds_to_90_percent),
            release.on_it_now
        );
    }
    html.push_str("</table><h2>Revoked releases still in use</h2>");
    if report.revoked_in_use.is_empty() {
        html.push_str("<p>None.</p>");
    }
    for release in &report.revoked_in_use {
        let _ = write!(
            html,
            "<p>{} {}: {} installations, among them <code>{}</code></p>",
            escape(&release.app_id),
            escape(&release.version),
            release.installations,
            escape(&release.sample.join(", "))
        );
    }
    let _ = write!(
        html,
        "<h2>Revocations</h2><p>{} installations revoked in the period.</p><ul>",
        report.installations_revoked
    );
    for revoked in &report.releases_revoked {
        let _ = write!(
            html,
            "<li>{} {} revoked {}</li>",
            escape(&revoked.app_id),
            escape(&revoked.version),
            escape(&date(revoked.at))
        );
    }
    let _ = write!(
        html,
        "</ul><h2>Audit evidence</h2><p>Built from the audit chain up to entry {}, head <code>{}</code>. {}</p>",
        provenance.head_seq,
        escape(&provenance.head_hash),
        match &provenance.checkpoint {
            Some((seq, hash)) => format!(
                "The chain contains the signed checkpoint of entry {seq} (<code>{}</code>); `medgate audit export` with `audit verify --file` proves the entries behind these figures.",
                escape(hash)
            ),
            None => "No signed checkpoint was given.".into(),
        }
    );
    if let Some(first) = provenance.pruned_before {
        let _ = write!(
            html,
            "<p>Entries before {first} were pruned: the figures count only what remains.</p>"
        );
    }
    let _ = writeln!(
        html,
        "<h2>Software bill of materials</h2><p>{}</p></body></html>",
        match provenance.sbom_components {
            Some(components) => format!(
                "<a href=\"sbom.cdx.json\">sbom.cdx.json</a>: CycloneDX 1.5, {components} components, each with its support level and end of support."
            ),
            None => "None was given (<code>scripts/sbom</code> makes one; <code>--sbom FILE</code> adds it).".into(),
        }
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart is plain SVG, fixed here byte for byte: a change to how it is drawn shows.
    #[test]
    fn the_chart_is_svg_drawn_on_the_server() {
        let day = 1_800_000_000 - 1_800_000_000 % 86_400;
        let svg = chart(&[
            (
                day,
                Outcomes {
                    allow: 3,
                    allow_limited: 1,
                    reject: 0,
                },
            ),
            (
                day + 86_400,
                Outcomes {
                    allow: 1,
                    allow_limited: 0,
                    reject: 1,
                },
            ),
        ]);
        assert_eq!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 48 136\" width=\"100%\" role=\"img\" aria-label=\"attestations per day\">\
<rect x=\"2\" y=\"30\" width=\"20\" height=\"90\" fill=\"#2e7d32\"><title>2027-01-15: 3</title></rect>\
<rect x=\"2\" y=\"0\" width=\"20\" height=\"30\" fill=\"#f9a825\"><title>2027-01-15: 1</title></rect>\
<rect x=\"26\" y=\"90\" width=\"20\" height=\"30\" fill=\"#2e7d32\"><title>2027-01-16: 1</title></rect>\
<rect x=\"26\" y=\"60\" width=\"20\" height=\"30\" fill=\"#c62828\"><title>2027-01-16: 1</title></rect>\
<text x=\"0\" y=\"132\" font-size=\"10\">max 4 a day</text></svg>"
        );
        assert!(chart(&[]).starts_with("<svg"));
    }

    #[test]
    fn text_from_the_store_is_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
