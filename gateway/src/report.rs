//! `sluicegate report`: the usage figures of the dashboard, in the terminal. Reads the ledger
//! the policy points at, read-only, through the same query and aggregation as `/api/usage`
//! ([`crate::usage`]).

use std::io::Write;

use anyhow::Context;
use serde::Serialize;
use sluicegate_policies::Policy;

use crate::ledger::Store;
use crate::usage::aggregate::Keyed;
use crate::usage::{load, now_ms, Dimension, Since, Stats, Summary};

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, a TOTAL line last.
    #[default]
    Table,
    /// A header line, one line per group, then a `total` line (`scope` column).
    Csv,
    /// One JSON object: `totals` and `groups`, money as decimal strings.
    Json,
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// How far back to look.
    pub since: Since,
    /// What the groups are.
    pub by: Dimension,
    /// How it is printed.
    pub format: Format,
}

/// Reads the policy's ledger and prints the report to `out`.
pub async fn run(
    policy: &Policy,
    options: &ReportOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let url = &policy.ledger.url;
    let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let file = url.strip_prefix("sqlite://").unwrap_or(url);
    if !is_postgres && !std::path::Path::new(file).exists() {
        anyhow::bail!(
            "no ledger at {file} (the policy's ledger.url; a relative path is relative to the \
             working directory): has the gateway run with this policy?"
        );
    }
    let store = Store::open_read_only(url)
        .await
        .with_context(|| format!("opening the ledger at {url} (read-only)"))?;
    let to_ms = now_ms();
    let since_ms = i64::try_from(options.since.duration.as_millis()).unwrap_or(i64::MAX);
    let from_ms = to_ms.saturating_sub(since_ms);
    let reference = policy.ledger.reference_route.as_deref();
    let summary = load(&store, options.by, from_ms, to_ms, None, reference)
        .await
        .context("reading the ledger")?;
    match options.format {
        Format::Json => json(&summary, options, reference, out)?,
        Format::Csv => write_csv(&summary, out)?,
        Format::Table => table(&summary, options, reference, out)?,
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct ReportBody<'a> {
    since: &'a str,
    from_ms: i64,
    to_ms: i64,
    by: &'static str,
    reference_route: Option<&'a str>,
    totals: &'a Stats,
    groups: Vec<Keyed<'a>>,
}

fn json(
    s: &Summary,
    options: &ReportOptions,
    reference: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let body = ReportBody {
        since: &options.since.text,
        from_ms: s.from_ms,
        to_ms: s.to_ms,
        by: s.by.as_str(),
        reference_route: reference,
        totals: &s.totals,
        groups: s.groups.iter().map(|g| g.keyed(s.by)).collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &body)?;
    writeln!(out)?;
    Ok(())
}

const COLUMNS: [&str; 15] = [
    "requests",
    "errors",
    "cost_usd",
    "counterfactual_cost_usd",
    "savings_usd",
    "escalation_share",
    "p50_latency_ms",
    "p95_latency_ms",
    "p50_ttft_ms",
    "p95_ttft_ms",
    "input_tokens",
    "output_tokens",
    "escalations",
    "compute_seconds",
    "implied_usd_per_mtok",
];

/// The cells of one line, in [`COLUMNS`] order. Money is printed exactly; milliseconds
/// with one decimal; a missing value is empty.
fn cells(s: &Stats) -> Vec<String> {
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    vec![
        s.requests.to_string(),
        s.errors.to_string(),
        s.cost_usd.to_string(),
        s.counterfactual_cost_usd.to_string(),
        s.savings_usd.to_string(),
        s.escalation_share
            .map(|v| format!("{v:.4}"))
            .unwrap_or_default(),
        ms(s.p50_latency_ms),
        ms(s.p95_latency_ms),
        ms(s.p50_ttft_ms),
        ms(s.p95_ttft_ms),
        s.input_tokens.to_string(),
        s.output_tokens.to_string(),
        s.escalations.to_string(),
        format!("{:.3}", s.compute_seconds),
        s.implied_usd_per_mtok
            .map(|d| d.to_string())
            .unwrap_or_default(),
    ]
}

/// RFC 4180 CSV (the `csv` crate quotes what needs quoting); a final `total` row.
fn write_csv(s: &Summary, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["scope", s.by.as_str()];
    header.extend(COLUMNS);
    w.write_record(&header)?;
    let lines = s
        .groups
        .iter()
        .map(|g| ("group", g.key.as_deref().unwrap_or(""), &g.stats))
        .chain([("total", "", &s.totals)]);
    for (scope, key, stats) in lines {
        let mut row = vec![scope.to_owned(), key.to_owned()];
        row.extend(cells(stats));
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn table(
    s: &Summary,
    options: &ReportOptions,
    reference: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "sluicegate usage, last {} by {} (reference route: {})",
        options.since.text,
        s.by,
        reference.unwrap_or("none, so no savings or escalations"),
    )?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec![s.by.as_str().to_uppercase()];
    head.extend(COLUMNS.iter().map(|c| c.to_uppercase()));
    rows.push(head);
    for g in &s.groups {
        let mut row = vec![g.key.clone().unwrap_or_else(|| "(none)".into())];
        row.extend(cells(&g.stats));
        rows.push(row);
    }
    let mut total = vec!["TOTAL".to_owned()];
    total.extend(cells(&s.totals));
    rows.push(total);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let cell = if cell.is_empty() { "-" } else { cell };
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
