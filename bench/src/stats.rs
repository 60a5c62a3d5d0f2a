//! Medians, percentiles and the result table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Median and 90th percentile of a sample, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub p90: f64,
    pub n: usize,
}

/// Summarises samples (milliseconds). `None` for an empty sample.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    // Nearest-rank percentile.
    let rank = (n * 9).div_ceil(10).max(1);
    Some(Summary {
        median,
        p90: v[rank - 1],
        n,
    })
}

/// Milliseconds with two decimals, or three below 1 ms.
fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2}")
    }
}

/// One line of the latency table.
pub struct Row {
    pub section: &'static str,
    pub what: String,
    pub summary: Option<Summary>,
    pub note: String,
}

/// Everything measured, by key, plus the rows in print order.
#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub by_key: BTreeMap<&'static str, Summary>,
    pub throughput: Vec<ThroughputRow>,
    pub values: BTreeMap<&'static str, f64>,
    pub notes: Vec<String>,
    pub memory: Vec<crate::load::MemoryRow>,
}

/// One concurrency level.
pub struct ThroughputRow {
    pub what: &'static str,
    pub clients: usize,
    pub per_second: f64,
    pub latency: Option<Summary>,
    pub ok: usize,
    pub failed: usize,
}

impl Results {
    /// Adds a measured row; `key` names it for the target computations.
    pub fn add(
        &mut self,
        section: &'static str,
        key: &'static str,
        what: &str,
        samples: &[f64],
        note: &str,
    ) {
        let summary = summarize(samples);
        if let Some(s) = summary {
            self.by_key.insert(key, s);
        }
        self.rows.push(Row {
            section,
            what: what.to_owned(),
            summary,
            note: note.to_owned(),
        });
    }

    /// Adds a row that could not be measured.
    pub fn skip(&mut self, section: &'static str, what: &str, why: &str) {
        self.rows.push(Row {
            section,
            what: what.to_owned(),
            summary: None,
            note: format!("not measured: {why}"),
        });
    }

    /// Median of a keyed row.
    pub fn median(&self, key: &str) -> Option<f64> {
        self.by_key.get(key).map(|s| s.median)
    }

    /// The latency table in Markdown.
    pub fn latency_table(&self) -> String {
        let mut out = String::new();
        out.push_str("| # | measurement | median ms | p90 ms | n | note |\n");
        out.push_str("|---|---|---:|---:|---:|---|\n");
        for r in &self.rows {
            let (m, p, n) = match r.summary {
                Some(s) => (ms(s.median), ms(s.p90), s.n.to_string()),
                None => ("–".into(), "–".into(), "0".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {m} | {p} | {n} | {} |",
                r.section, r.what, r.note
            );
        }
        out
    }

    /// The concurrency table in Markdown.
    pub fn throughput_table(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| passdb | concurrent clients | logins/s | median latency ms | p90 latency ms | ok | failed |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for t in &self.throughput {
            let (m, p) = match t.latency {
                Some(s) => (format!("{:.1}", s.median), format!("{:.1}", s.p90)),
                None => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {m} | {p} | {} | {} |",
                t.what, t.clients, t.per_second, t.ok, t.failed
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90() {
        let s = summarize(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap_or(Summary {
            median: 0.0,
            p90: 0.0,
            n: 0,
        });
        assert!((s.median - 3.0).abs() < 1e-9);
        assert!((s.p90 - 5.0).abs() < 1e-9);
        assert!(summarize(&[]).is_none());
    }
}
