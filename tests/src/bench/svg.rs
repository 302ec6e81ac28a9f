//! Two small chart kinds written as SVG by hand (no plotting dependency): horizontal bars with
//! min–max whiskers, and lines over a logarithmic x axis.

use std::fmt::Write as _;

use super::stats::Summary;

const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";
const COLOURS: [&str; 6] = [
    "#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6",
];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A step of 1, 2 or 5 × 10^n giving about `ticks` divisions up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn tick_label(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", trim(v / 1_000_000.0))
    } else if v >= 10_000.0 {
        format!("{}k", trim(v / 1000.0))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One bar: the median, with the min–max range as a whisker.
pub struct Bar {
    pub label: String,
    pub value: Summary,
    /// Drawn in the second colour (baselines).
    pub highlight: bool,
}

/// Horizontal bars, one per row, with an optional vertical reference line (`value`, `label`).
pub fn bar_chart(title: &str, unit: &str, bars: &[Bar], reference: Option<(f64, &str)>) -> String {
    let label_w = 330.0;
    let plot_w = 420.0;
    let row_h = 24.0;
    let top = 40.0;
    let height = top + row_h * bars.len() as f64 + 50.0;
    let width = label_w + plot_w + 70.0;
    let max = bars
        .iter()
        .map(|b| b.value.max)
        .chain(reference.map(|r| r.0))
        .fold(0.0f64, f64::max);
    let step = nice_step(max, 5.0);
    let axis_max = (max / step).ceil().max(1.0) * step;
    let x = |v: f64| label_w + v / axis_max * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" {FONT}>"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        10,
        esc(title)
    );
    let bottom = top + row_h * bars.len() as f64;
    let mut v = 0.0;
    while v <= axis_max + step / 2.0 {
        let px = x(v);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            bottom + 16.0,
            tick_label(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
        label_w + plot_w / 2.0,
        bottom + 36.0,
        esc(unit)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = top + row_h * i as f64;
        let colour = if bar.highlight {
            COLOURS[2]
        } else {
            COLOURS[0]
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + row_h / 2.0 + 4.0,
            esc(&bar.label)
        );
        let _ = writeln!(
            s,
            "<rect x=\"{label_w}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
            y + 4.0,
            (x(bar.value.median) - label_w).max(0.5),
            row_h - 8.0
        );
        let (lo, hi) = (x(bar.value.min), x(bar.value.max));
        let mid = y + row_h / 2.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lo:.1}\" y1=\"{mid:.1}\" x2=\"{hi:.1}\" y2=\"{mid:.1}\" stroke=\"#222\"/>\
             <line x1=\"{lo:.1}\" y1=\"{:.1}\" x2=\"{lo:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>\
             <line x1=\"{hi:.1}\" y1=\"{:.1}\" x2=\"{hi:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>",
            mid - 4.0,
            mid + 4.0,
            mid - 4.0,
            mid + 4.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{}</text>",
            hi + 5.0,
            mid + 4.0,
            trim(bar.value.median)
        );
    }
    if let Some((value, label)) = reference {
        let px = x(value);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{bottom}\" stroke=\"{}\" \
             stroke-dasharray=\"4 3\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
             fill=\"{}\">{}</text>",
            top - 4.0,
            COLOURS[1],
            top - 8.0,
            COLOURS[1],
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    /// (x, y) with y's spread drawn as a whisker.
    pub points: Vec<(f64, Summary)>,
}

/// Lines over a logarithmic x axis (decades), a linear y axis from 0.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (left, plot_w, top, plot_h) = (70.0, 520.0, 40.0, 260.0);
    let legend_w = 230.0;
    let width = left + plot_w + legend_w;
    let height = top + plot_h + 60.0;
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| *x > 0.0)
        .collect();
    let x_lo = xs
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        .log10()
        .floor();
    let x_hi = xs
        .iter()
        .copied()
        .fold(1.0f64, f64::max)
        .log10()
        .ceil()
        .max(x_lo + 1.0);
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.max))
        .fold(0.0f64, f64::max);
    let step = nice_step(y_max, 5.0);
    let y_top = (y_max / step).ceil().max(1.0) * step;
    let px = |x: f64| left + (x.max(1.0).log10() - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| top + plot_h - y / y_top * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" {FONT}>"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let mut y = 0.0;
    while y <= y_top + step / 2.0 {
        let p = py(y);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{p:.1}\" x2=\"{:.1}\" y2=\"{p:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            left + plot_w,
            left - 6.0,
            p + 4.0,
            tick_label(y)
        );
        y += step;
    }
    let mut decade = x_lo;
    while decade <= x_hi + 0.01 {
        let p = left + (decade - x_lo) / (x_hi - x_lo) * plot_w;
        let _ = writeln!(
            s,
            "<line x1=\"{p:.1}\" y1=\"{top}\" x2=\"{p:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{p:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            top + plot_h,
            top + plot_h + 16.0,
            tick_label(10f64.powf(decade))
        );
        decade += 1.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\" \
         transform=\"rotate(-90 16 {:.1})\">{}</text>",
        left + plot_w / 2.0,
        top + plot_h + 40.0,
        esc(x_label),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        esc(y_label)
    );
    for (i, line) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(y.median)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        for (x, y) in &line.points {
            let (cx, lo, hi) = (px(*x), py(y.min), py(y.max));
            let _ = writeln!(
                s,
                "<circle cx=\"{cx:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\
                 <line x1=\"{cx:.1}\" y1=\"{lo:.1}\" x2=\"{cx:.1}\" y2=\"{hi:.1}\" \
                 stroke=\"{colour}\"/>",
                py(y.median)
            );
        }
        let ly = top + 10.0 + 20.0 * i as f64;
        let lx = left + plot_w + 16.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            esc(&line.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(v: f64) -> Summary {
        Summary {
            min: v * 0.9,
            median: v,
            max: v * 1.1,
            n: 3,
        }
    }

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(tick_label(25_000.0), "25k");
        assert_eq!(tick_label(2.5), "2.5");
    }

    #[test]
    fn charts_are_well_formed_and_escape_text() {
        let bars = [
            Bar {
                label: "a <b> & c".into(),
                value: summary(10.0),
                highlight: false,
            },
            Bar {
                label: "floor".into(),
                value: summary(5.0),
                highlight: true,
            },
        ];
        let svg = bar_chart("t", "ns", &bars, Some((5.0, "floor")));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert_eq!(svg.matches("<rect").count(), 3);
        let lines = [Series {
            name: "wlc".into(),
            points: vec![(2.0, summary(30.0)), (1000.0, summary(900.0))],
        }];
        let svg = line_chart("t", "real servers", "ns", &lines);
        assert!(svg.contains("<polyline") && svg.contains(">1000<"));
    }
}
