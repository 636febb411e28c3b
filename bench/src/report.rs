//! The results: one [`Row`] per figure, printed as a table and written as JSON.
//!
//! A budget is judged on the **median** over runs (or windows, or trials — the row says which),
//! because a single run on a shared two-core machine can be disturbed by anything else running;
//! the spread is printed next to it so that a reader sees how much it moved.

use serde::Serialize;

use crate::stats::Summary;

/// How a figure is compared with its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// `figure <= limit`
    AtMost,
    /// `figure < limit`
    Below,
    /// `figure >= limit`
    AtLeast,
}

#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    pub op: Op,
    pub limit: f64,
}

impl Budget {
    pub fn at_most(limit: f64) -> Option<Budget> {
        Some(Budget { op: Op::AtMost, limit })
    }
    pub fn below(limit: f64) -> Option<Budget> {
        Some(Budget { op: Op::Below, limit })
    }
    pub fn at_least(limit: f64) -> Option<Budget> {
        Some(Budget { op: Op::AtLeast, limit })
    }
    fn holds(&self, v: f64) -> bool {
        match self.op {
            Op::AtMost => v <= self.limit,
            Op::Below => v < self.limit,
            Op::AtLeast => v >= self.limit,
        }
    }
    fn text(&self) -> String {
        let sym = match self.op {
            Op::AtMost => "≤",
            Op::Below => "<",
            Op::AtLeast => "≥",
        };
        format!("{sym} {}", num(self.limit))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// No budget: reported for information.
    Info,
    /// The scenario could not measure this figure.
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub unit: String,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// What the median is taken over: "3 runs", "6 windows of 10 s", "10 trials".
    pub over: String,
    pub budget: Option<Budget>,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// A measured figure; judged against `budget` if there is one.
    pub fn new(
        scenario: &str,
        figure: &str,
        unit: &str,
        summary: Option<Summary>,
        over: impl Into<String>,
        budget: Option<Budget>,
    ) -> Row {
        let verdict = match (&summary, &budget) {
            (None, _) => Verdict::Error,
            (Some(_), None) => Verdict::Info,
            (Some(s), Some(b)) if b.holds(s.median) => Verdict::Pass,
            (Some(_), Some(_)) => Verdict::Fail,
        };
        Row {
            scenario: scenario.into(),
            figure: figure.into(),
            unit: unit.into(),
            median: summary.map(|s| s.median),
            min: summary.map(|s| s.min),
            max: summary.map(|s| s.max),
            over: over.into(),
            budget,
            verdict,
            note: None,
        }
    }

    /// A scenario that broke before it could measure.
    pub fn error(scenario: &str, figure: &str, why: impl Into<String>) -> Row {
        let mut r = Row::new(scenario, figure, "", None, "", None);
        r.note = Some(why.into());
        r
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }
}

/// A number for a table cell: thousands separated, fewer decimals as it grows.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a < 1000.0 && v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1000.0 {
        let s = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table as text (also what docs/BENCHMARKS.md quotes).
pub fn table(rows: &[Row]) -> String {
    let header = ["scenario", "figure", "median", "spread (min–max)", "over", "budget", "result"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let unit = if r.unit.is_empty() { String::new() } else { format!(" {}", r.unit) };
            let median = r.median.map(|m| format!("{}{unit}", num(m))).unwrap_or_else(|| "—".into());
            let spread = match (r.min, r.max) {
                (Some(lo), Some(hi)) if r.min != r.max => format!("{}–{}", num(lo), num(hi)),
                (Some(_), Some(_)) => "(one value)".into(),
                _ => "—".into(),
            };
            let budget = r.budget.as_ref().map(|b| format!("{}{unit}", b.text())).unwrap_or_else(|| "—".into());
            let verdict = match r.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Info => "info",
                Verdict::Error => "ERROR",
            };
            [r.scenario.clone(), r.figure.clone(), median, spread, r.over.clone(), budget, verdict.to_string()]
        })
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c.iter()) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in c.iter().zip(width.iter()).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            // Numbers right-aligned, words left-aligned.
            if i == 2 {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < c.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < c.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&header.map(String::from)));
    out.push('\n');
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    let notes: Vec<String> =
        rows.iter().filter_map(|r| r.note.as_ref().map(|n| format!("- {} / {}: {n}", r.scenario, r.figure))).collect();
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(26712.4), "26,712");
        assert_eq!(num(1_000_000.0), "1,000,000");
        assert_eq!(num(251.26), "251");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(3.456), "3.46");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn the_median_is_judged() {
        let s = Summary::of(&[200.0, 250.0, 300.0]);
        assert_eq!(Row::new("a", "b", "ms", s, "3 runs", Budget::at_most(265.0)).verdict, Verdict::Pass);
        assert_eq!(Row::new("a", "b", "ms", s, "3 runs", Budget::at_most(249.0)).verdict, Verdict::Fail);
        assert_eq!(Row::new("a", "b", "ms", s, "3 runs", None).verdict, Verdict::Info);
        assert_eq!(Row::error("a", "b", "broke").verdict, Verdict::Error);
        assert!(table(&[Row::error("a", "b", "broke")]).contains("ERROR"));
    }
}
