//! Charts as SVG, drawn on the server: no script, the same bytes for the same counts (so they
//! are snapshot-tested), colours from the stylesheet by class (the Content-Security-Policy
//! allows no inline style).

use maud::{Markup, html};

/// One stacked series: a label, its CSS class, and a count per period.
pub(super) struct Stack {
    pub(super) label: &'static str,
    pub(super) class: &'static str,
    pub(super) values: Vec<u64>,
}

/// A drawn bar segment.
struct Rect {
    class: &'static str,
    x: f64,
    y: f64,
    height: f64,
    title: String,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 48.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// The smallest of 1, 2 or 5 times a power of ten at or above `max` (at least 1).
fn nice_ceiling(max: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for step in [1u64, 2, 5] {
            let candidate = step.saturating_mul(scale);
            if candidate >= max {
                return candidate;
            }
        }
        scale = scale.saturating_mul(10);
    }
}

/// A period's start as a label: the time of day for periods under a day, else the date (UTC).
fn label(start: i64, step: i64) -> String {
    let text = medgate_service::clock::rfc3339(medgate_proto::time::UnixTime::from_secs(start));
    let range = if step < 86_400 { 11..16 } else { 5..10 };
    text.get(range).unwrap_or_default().to_string()
}

/// A stacked bar per period (`starts`, each `step` seconds long), with a legend.
pub(super) fn stacked_bars(title: &str, starts: &[i64], step: i64, stacks: &[Stack]) -> Markup {
    let periods = starts.len();
    let totals: Vec<u64> = (0..periods)
        .map(|i| {
            stacks
                .iter()
                .map(|stack| stack.values.get(i).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add)
        })
        .collect();
    let ceiling = nice_ceiling(totals.iter().copied().max().unwrap_or(0));
    let plot_width = WIDTH - LEFT - 4.0;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / periods.max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |value: u64| TOP + plot_height * (1.0 - value as f64 / ceiling as f64);
    let ticks = if ceiling >= 2 {
        vec![0, ceiling / 2, ceiling]
    } else {
        vec![0, ceiling]
    };
    // Each period's non-zero counts, stacked from the axis up.
    let mut rects = Vec::new();
    for (i, start) in starts.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut below = 0u64;
        for stack in stacks {
            let value = stack.values.get(i).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let top = y(below.saturating_add(value));
            rects.push(Rect {
                class: stack.class,
                x,
                y: top,
                height: y(below) - top,
                title: format!("{} · {}: {value}", label(*start, step), stack.label),
            });
            below = below.saturating_add(value);
        }
    }
    // The first, middle and last periods are labelled; the outer labels lean inwards.
    let labelled: Vec<(usize, &str)> = match periods {
        0 => vec![],
        1 => vec![(0, "middle")],
        n => vec![(0, "start"), (n / 2, "middle"), (n - 1, "end")],
    };
    html! {
        figure.chart {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
                role="img" aria-label=(title) {
                @for tick in &ticks {
                    line.grid x1=(LEFT) x2=(WIDTH - 4.0) y1=(format!("{:.1}", y(*tick)))
                        y2=(format!("{:.1}", y(*tick))) {}
                    text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y(*tick) + 4.0))
                        text-anchor="end" { (tick) }
                }
                @for rect in &rects {
                    rect class=(rect.class) x=(format!("{:.1}", rect.x)) y=(format!("{:.1}", rect.y))
                        width=(format!("{bar:.1}")) height=(format!("{:.1}", rect.height)) {
                        title { (rect.title) }
                    }
                }
                @for (i, anchor) in &labelled {
                    text.axis x=(format!("{:.1}", LEFT + slot * (*i as f64 + 0.5)))
                        y=(HEIGHT - 6.0) text-anchor=(anchor) { (label(starts[*i], step)) }
                }
                @if totals.iter().all(|total| *total == 0) {
                    text.empty x=(LEFT + plot_width / 2.0) y=(TOP + plot_height / 2.0)
                        text-anchor="middle" { "Nothing in this period" }
                }
            }
            ul.legend {
                @for stack in stacks {
                    li {
                        svg.swatch viewBox="0 0 10 10" aria-hidden="true" {
                            rect class=(stack.class) width="10" height="10" {}
                        }
                        (stack.label) " " (stack.values.iter().copied().fold(0u64, u64::saturating_add))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart for fixed counts, byte for byte. On a change, the test writes the new drawing
    /// beside the snapshot (`.new`) to be looked at and, if right, moved over it.
    fn snapshot(name: &str, drawn: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/console/snapshots")
            .join(name);
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != drawn {
            std::fs::write(path.with_extension("svg.new"), drawn).unwrap();
            panic!("{name} changed: compare it with {name}.new");
        }
    }

    #[test]
    fn attestations_per_hour_stack_by_decision() {
        let starts: Vec<i64> = (0..6).map(|i| 1_800_000_000 + 3600 * i).collect();
        let chart = stacked_bars(
            "Attestations",
            &starts,
            3600,
            &[
                Stack {
                    label: "allowed",
                    class: "s-allow",
                    values: vec![5, 8, 0, 12, 3, 0],
                },
                Stack {
                    label: "limited",
                    class: "s-limited",
                    values: vec![1, 0, 0, 2, 0, 0],
                },
                Stack {
                    label: "rejected",
                    class: "s-reject",
                    values: vec![0, 2, 0, 7, 1, 0],
                },
            ],
        );
        snapshot("attestations.svg", &chart.into_string());
    }

    #[test]
    fn an_empty_month_says_so() {
        let starts: Vec<i64> = (0..30).map(|i| 1_800_000_000 + 86_400 * i).collect();
        let chart = stacked_bars(
            "Gateway requests",
            &starts,
            86_400,
            &[Stack {
                label: "forwarded",
                class: "s-allow",
                values: vec![0; 30],
            }],
        );
        snapshot("empty-month.svg", &chart.into_string());
    }

    #[test]
    fn ceilings_are_round() {
        let ceilings: Vec<u64> = [0, 1, 2, 3, 6, 10, 11, 99, 101, 4_999, u64::MAX]
            .into_iter()
            .map(nice_ceiling)
            .collect();
        assert_eq!(
            ceilings,
            [1, 1, 2, 5, 10, 10, 20, 100, 200, 5_000, u64::MAX]
        );
    }
}
