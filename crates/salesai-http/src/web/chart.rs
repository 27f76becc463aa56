//! Charts drawn on the server as SVG (no chart library in the browser), each with its numbers
//! in text beside it for screen readers and for reading exact values.

use maud::{Markup, html};

/// A radar chart of 0–100 scores: one axis per `(label, value)`, at least three.
pub fn radar(title: &str, axes: &[(&str, u8)]) -> Markup {
    let n = axes.len().max(3) as f64;
    let (cx, cy, r) = (120.0_f64, 110.0_f64, 80.0_f64);
    let point = |i: usize, value: f64| {
        let angle = -std::f64::consts::FRAC_PI_2 + (i as f64) * std::f64::consts::TAU / n;
        (cx + r * value * angle.cos(), cy + r * value * angle.sin())
    };
    let polygon = |value_of: &dyn Fn(usize) -> f64| {
        (0..axes.len())
            .map(|i| {
                let (x, y) = point(i, value_of(i));
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let shape = polygon(&|i| f64::from(axes[i].1.min(100)) / 100.0);
    html! {
        svg.radar viewBox="0 0 240 220" role="img" aria-label=(title) {
            title { (title) }
            @for ring in [0.25, 0.5, 0.75, 1.0] {
                polygon.ring points=(polygon(&|_| ring)) {}
            }
            @for i in 0..axes.len() {
                @let (x, y) = point(i, 1.0);
                line.axis x1=(cx) y1=(cy) x2=(format!("{x:.1}")) y2=(format!("{y:.1}")) {}
            }
            polygon.shape points=(shape) {}
            @for (i, (label, value)) in axes.iter().enumerate() {
                @let (x, y) = point(i, 1.22);
                @let anchor = if (x - cx).abs() < 1.0 { "middle" } else if x > cx { "start" } else { "end" };
                text x=(format!("{x:.1}")) y=(format!("{:.1}", y + 4.0)) text-anchor=(anchor) {
                    (label) " " tspan.value { (value) }
                }
            }
        }
    }
}

/// Horizontal bars of 0–100 scores with their numbers, as a list.
pub fn bars(title: &str, rows: &[(&str, u8)]) -> Markup {
    html! {
        ul.bars aria-label=(title) {
            @for (label, value) in rows {
                li {
                    span.bar-label { (label) }
                    // SVG attributes, not inline styles: the page's CSP allows no inline style.
                    svg.bar-track viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" {
                        rect.track width="100" height="8" rx="4" {}
                        rect class=(format!("fill tone-{}", tone(*value))) width=(value.min(&100)) height="8" rx="4" {}
                    }
                    span.bar-value { (value) }
                }
            }
        }
    }
}

/// A score's tone for colour: `good` ≥ 70, `fair` ≥ 50, `weak` ≥ 30, else `poor`.
pub fn tone(score: u8) -> &'static str {
    match score {
        70.. => "good",
        50.. => "fair",
        30.. => "weak",
        _ => "poor",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radar_has_an_axis_and_a_number_per_score() {
        let svg = radar(
            "PDCM",
            &[
                ("Pain", 80),
                ("Decision", 40),
                ("Champion", 100),
                ("Metrics", 0),
            ],
        )
        .into_string();
        assert_eq!(svg.matches("<line").count(), 4);
        assert!(svg.contains(">80<") && svg.contains(">0<"));
        assert!(svg.contains("<title>PDCM</title>"));
    }

    #[test]
    fn labels_are_escaped() {
        let html = bars("x", &[("<script>", 50)]).into_string();
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
    }
}
