//! The drawing primitives of xtask's hand-written SVG charts: `bench-report`'s latency
//! plot, `eval --plot`'s robustness curve and `sweep`'s results. One place writes the
//! document frame, escapes text, draws grid lines with their tick labels, axes, polylines
//! and markers, and picks "nice" tick steps, so each chart only says what it plots and
//! where. Coordinates are pixels; each chart maps its data to them.

use std::fmt::Write;

/// The series colours, in order (matplotlib's first six).
pub const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Text as SVG character data or an attribute value.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "Nice" tick spacing (1, 2 or 5 times a power of ten) for about `target` ticks.
pub fn nice_step(range: f64, target: f64) -> f64 {
    let raw = (range / target).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// The `stroke-dasharray` attribute of a dash pattern (empty: a solid line).
fn dash_attr(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    }
}

/// An SVG document being written, one element per line.
pub struct Svg(String);

impl Svg {
    /// A `w` x `h` document on a white background.
    pub fn new(w: f64, h: f64) -> Self {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
        );
        Svg(s)
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.0.push_str("</svg>\n");
        self.0
    }

    /// `content` (escaped) at (x, y); `anchor` is `start`, `middle` or `end`; `attrs`
    /// are extra attributes (`font-size="14"`), or empty.
    pub fn text_with(&mut self, x: f64, y: f64, anchor: &str, attrs: &str, content: &str) {
        let sep = if attrs.is_empty() { "" } else { " " };
        let _ = writeln!(
            self.0,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}"{sep}{attrs}>{}</text>"#,
            xml_escape(content)
        );
    }

    /// `content` (escaped) at (x, y) in the document's font.
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, content: &str) {
        self.text_with(x, y, anchor, "", content);
    }

    /// A title centred on x.
    pub fn title(&mut self, x: f64, y: f64, content: &str) {
        self.text_with(x, y, "middle", r#"font-size="14""#, content);
    }

    /// A vertical axis label centred on (x, y), reading upwards.
    pub fn y_label(&mut self, x: f64, y: f64, content: &str) {
        let attrs = format!(r#"transform="rotate(-90 {x:.1} {y:.1})""#);
        self.text_with(x, y, "middle", &attrs, content);
    }

    /// A horizontal grid line from x0 to x1 at height y, with its tick label 8 px left
    /// of x0.
    pub fn h_grid(&mut self, x0: f64, x1: f64, y: f64, color: &str, label: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 8.0,
            y + 4.0,
            xml_escape(label)
        );
    }

    /// A vertical grid line from y0 down to y1 at x, with its tick label `gap` px below
    /// y1.
    pub fn v_grid(&mut self, x: f64, y0: f64, y1: f64, gap: f64, color: &str, label: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="{color}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y1 + gap,
            xml_escape(label)
        );
    }

    /// The x and y axes of the plot area with top-left corner (left, top), `pw` x `ph`.
    pub fn axes(&mut self, left: f64, top: f64, pw: f64, ph: f64) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{left:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{left:.1}" y1="{top:.1}" x2="{left:.1}" y2="{:.1}" stroke="black"/>"#,
            top + ph,
            left + pw,
            top + ph,
            top + ph
        );
    }

    /// A frame around the plot area with top-left corner (left, top), `pw` x `ph`.
    pub fn frame(&mut self, left: f64, top: f64, pw: f64, ph: f64) {
        let _ = writeln!(
            self.0,
            r##"<rect x="{left:.1}" y="{top:.1}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#444"/>"##
        );
    }

    /// A line through `points` (pixels), 2 px wide, with a dash pattern (empty: solid).
    pub fn polyline(
        &mut self,
        points: impl IntoIterator<Item = (f64, f64)>,
        color: &str,
        dash: &str,
    ) {
        let path: Vec<String> = points
            .into_iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.0,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{} points="{}"/>"#,
            dash_attr(dash),
            path.join(" ")
        );
    }

    /// A filled round marker of radius r at (x, y).
    pub fn dot(&mut self, x: f64, y: f64, r: f64, color: &str) {
        let _ = writeln!(
            self.0,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{color}"/>"#
        );
    }

    /// A hollow square marker of side 8 centred on (x, y): a series with a single point.
    pub fn square(&mut self, x: f64, y: f64, color: &str) {
        let _ = writeln!(
            self.0,
            r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="none" stroke="{color}" stroke-width="2"/>"#,
            x - 4.0,
            y - 4.0
        );
    }

    /// A vertical error bar at x from y0 to y1 (pixels), with caps `cap` px to each side.
    pub fn v_bar(&mut self, x: f64, y0: f64, y1: f64, cap: f64, color: &str) {
        let _ = writeln!(
            self.0,
            r#"<path fill="none" stroke="{color}" stroke-width="1.5" d="M{x:.1},{y0:.1}V{y1:.1}M{:.1},{y0:.1}H{:.1}M{:.1},{y1:.1}H{:.1}"/>"#,
            x - cap,
            x + cap,
            x - cap,
            x + cap
        );
    }

    /// A filled rectangle, e.g. a legend swatch.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: &str) {
        let _ = writeln!(
            self.0,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"/>"#
        );
    }

    /// A legend entry at (x, y): a 24 px line in the series' colour and dash, then its
    /// label.
    pub fn legend_line(&mut self, x: f64, y: f64, color: &str, dash: &str, label: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2"{}/>"#,
            x + 24.0,
            dash_attr(dash)
        );
        self.text(x + 30.0, y + 4.0, "start", label);
    }

    /// A horizontal reference line from x0 to x1 at height y, 1 px wide, with a dash
    /// pattern (empty: solid).
    pub fn h_rule(&mut self, x0: f64, x1: f64, y: f64, color: &str, dash: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="{color}"{}/>"#,
            dash_attr(dash)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_well_formed_and_escapes_text() {
        let mut s = Svg::new(100.0, 50.0);
        s.title(50.0, 20.0, "a <b> & \"c\"");
        s.h_grid(10.0, 90.0, 30.0, "#ddd", "40");
        s.v_grid(20.0, 5.0, 45.0, 16.0, "#ddd", "2x");
        s.axes(10.0, 5.0, 80.0, 40.0);
        s.polyline([(10.0, 40.0), (20.0, 30.0)], PALETTE[0], "2 3");
        s.dot(20.0, 30.0, 3.0, PALETTE[1]);
        s.legend_line(60.0, 10.0, PALETTE[0], "", "PGD <40>");
        let svg = s.finish();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(svg.contains("PGD &lt;40&gt;"));
        assert!(svg.contains(r#"stroke-dasharray="2 3" points="10.0,40.0 20.0,30.0""#));
        // Every element opened is closed: one root, the rest self-closing or paired.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.4, 6.0), 0.1);
        assert_eq!(nice_step(0.031, 6.0), 0.01);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(nice_step(30.0, 5.0), 10.0);
    }
}
