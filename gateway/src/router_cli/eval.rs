//! `sluicegate router eval` and `sluicegate router calibrate`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use sluicegate_encoder::Encoder;
use sluicegate_router::classifier::metrics::{
    report, threshold_for_accuracy, threshold_for_escalation, threshold_row, Prediction,
};
use sluicegate_router::classifier::train::Rng;
use sluicegate_router::classifier::{ExampleScorer, ExampleStrategy, Head, Scorer};
use sluicegate_router::stats::percentile_of;

use super::{embed, load_encoder, read_rows, EncoderArg, Row};

#[derive(Debug, Args)]
pub struct ScorerArgs {
    /// A trained head (`sluicegate router train`).
    #[arg(long, conflicts_with_all = ["config", "few_shot_from"])]
    pub head: Option<PathBuf>,
    /// A policy whose `[classifier]` to evaluate (its head or its class examples).
    #[arg(long, conflicts_with = "few_shot_from")]
    pub config: Option<PathBuf>,
    /// Build classes from this many examples per label of this JSONL file, and compare the
    /// example-matching strategies (centroid, k-nearest).
    #[arg(long)]
    pub few_shot_from: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub shots: usize,
    /// Out of scope below this similarity to the nearest example or training row (default:
    /// the policy's `min_similarity` with `--config`, else the threshold for the target recall).
    #[arg(long)]
    pub min_similarity: Option<f32>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled JSONL to evaluate on.
    #[arg(long, required_unless_present = "routellm")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub scorer: ScorerArgs,
    /// RouteLLM file: train routers on what escalating each prompt gains on one part, print
    /// the cost-quality curve on the other.
    #[arg(long, conflicts_with = "data")]
    pub routellm: Option<PathBuf>,
    /// Share of the RouteLLM rows used for training.
    #[arg(long, default_value_t = 0.5)]
    pub train_share: f32,
    /// Requests timed one by one for the latency percentiles.
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    /// Out-of-scope recall the reported threshold must reach when none is chosen.
    #[arg(long, default_value_t = 0.9)]
    pub target_oos_recall: f32,
    #[command(flatten)]
    pub encoder: EncoderArg,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub scorer: ScorerArgs,
    /// Largest share of requests that may escalate.
    #[arg(
        long,
        conflicts_with = "target_accuracy",
        required_unless_present_any = ["target_accuracy", "target_oos_recall"]
    )]
    pub target_escalation: Option<f32>,
    /// Accuracy the kept (not escalated) requests must reach.
    #[arg(long)]
    pub target_accuracy: Option<f32>,
    /// Instead: the `min_similarity` that finds this share of the out-of-scope rows (rows
    /// whose label the scorer lacks).
    #[arg(long, conflicts_with_all = ["target_escalation", "target_accuracy"])]
    pub target_oos_recall: Option<f32>,
    #[command(flatten)]
    pub encoder: EncoderArg,
}

/// A scorer and the name it is reported under.
type Named = (String, Arc<dyn Scorer>);

/// The scorers to evaluate, with the `min_similarity` chosen for them (`--min-similarity`,
/// else the policy's with `--config`).
fn scorers(
    args: &ScorerArgs,
    encoder: &Encoder,
    encoder_dir: &std::path::Path,
) -> anyhow::Result<(Vec<Named>, Option<f32>)> {
    if let Some(head) = &args.head {
        let scorer: Arc<dyn Scorer> = Arc::new(Head::load(head, encoder.fingerprint())?);
        return Ok((vec![("head".into(), scorer)], args.min_similarity));
    }
    if let Some(config) = &args.config {
        let policy = sluicegate_policies::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut c = policy
            .classifier
            .context("the policy has no [classifier] table")?;
        // The encoder used is --encoder's (its embedding cache too), whatever the policy says.
        c.encoder = encoder_dir.to_owned();
        let scorer = sluicegate_router::classifier::setup::scorer_for(&c, encoder)?;
        let chosen = args.min_similarity.or(c.min_similarity);
        return Ok((vec![("policy".into(), scorer)], chosen));
    }
    let Some(file) = &args.few_shot_from else {
        bail!("give --head, --config or --few-shot-from");
    };
    let mut rows = read_rows(file)?;
    Rng::new(11).shuffle(&mut rows);
    let mut by_label: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        let shots = by_label.entry(r.label).or_default();
        if shots.len() < args.shots {
            shots.push(r.text);
        }
    }
    let mut classes = Vec::new();
    for (label, texts) in by_label {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        classes.push((
            label,
            super::cache_embed_quiet(encoder, encoder_dir, &texts)?,
        ));
    }
    let scorers = [
        ("centroid", ExampleStrategy::Centroid),
        ("knn-1", ExampleStrategy::Knn(1)),
        ("knn-3", ExampleStrategy::Knn(3)),
    ]
    .into_iter()
    .map(|(name, s)| {
        let scorer: Arc<dyn Scorer> = Arc::new(ExampleScorer::new(classes.clone(), s));
        (format!("{}-shot {name}", args.shots), scorer)
    })
    .collect();
    Ok((scorers, args.min_similarity))
}

fn predict(scorer: &dyn Scorer, rows: &[Row], x: &[Vec<f32>]) -> (Vec<Prediction>, usize) {
    let labels = scorer.labels();
    let mut unknown = 0;
    let mut out = Vec::new();
    for (row, e) in rows.iter().zip(x) {
        let Some(truth) = labels.iter().position(|l| *l == row.label) else {
            unknown += 1;
            continue;
        };
        let probs = scorer.probabilities(e);
        let (predicted, confidence) = probs
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        out.push(Prediction {
            truth,
            predicted,
            confidence,
        });
    }
    (out, unknown)
}

const THRESHOLDS: [f32; 10] = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

pub fn eval_command(args: &EvalArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.routellm {
        return super::routellm::run(file, args.train_share, &args.encoder.encoder);
    }
    let Some(data) = &args.data else {
        bail!("give --data or --routellm");
    };
    let rows = read_rows(data)?;
    let encoder = load_encoder(&args.encoder.encoder)?;
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let x = embed(&encoder, &args.encoder.encoder, &texts)?;
    let (scorers, chosen) = scorers(&args.scorer, &encoder, &args.encoder.encoder)?;
    for (name, scorer) in &scorers {
        let (preds, unknown) = predict(scorer.as_ref(), &rows, &x);
        let r = report(&preds, scorer.labels().len());
        println!(
            "{name}: accuracy {:.2}%  macro-F1 {:.2}%  ({} rows{})",
            r.accuracy * 100.0,
            r.macro_f1 * 100.0,
            preds.len(),
            if unknown > 0 {
                format!(", {unknown} with labels the scorer lacks: out of scope, below")
            } else {
                String::new()
            }
        );
    }
    for (name, scorer) in &scorers {
        match super::scope::cases(scorer.as_ref(), &rows, &x) {
            Some(cases) => super::scope::report(name, &cases, chosen, args.target_oos_recall),
            None => println!("\n{name}: keeps no embeddings to compare with (retrain the head)"),
        }
    }
    let Some((name, scorer)) = scorers.first() else {
        return Ok(());
    };
    let labels = scorer.labels();
    let (preds, _) = predict(scorer.as_ref(), &rows, &x);
    let r = report(&preds, labels.len());
    println!("\n== {name} ==\nworst classes (F1, precision, recall, support):");
    for c in r.per_class.iter().take(5) {
        println!(
            "  {:<40} {:>5.1}% {:>5.1}% {:>5.1}% {:>4}",
            labels[c.class],
            c.f1 * 100.0,
            c.precision * 100.0,
            c.recall * 100.0,
            c.support
        );
    }
    println!("top confusions (truth -> predicted: count):");
    for (t, p, n) in r.confusions.iter().take(8) {
        println!("  {} -> {}: {n}", labels[*t], labels[*p]);
    }
    println!("confidence threshold: escalated share, accuracy of kept");
    for t in THRESHOLDS {
        let row = threshold_row(&preds, t);
        println!(
            "  < {t:<4}  escalate {:>5.1}%  kept accuracy {:>6.2}%",
            row.escalated * 100.0,
            row.kept_accuracy * 100.0
        );
    }
    // Latency: one request at a time, tokenise + encoder + scorer.
    let mut ms = Vec::new();
    let mut tokens = 0usize;
    for text in texts.iter().take(args.latency_samples) {
        let started = Instant::now();
        let e = encoder.embed(&[text])?;
        let _ = e.first().and_then(|e| scorer.verdict(e));
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        tokens += encoder.token_ids(text)?.len();
    }
    println!(
        "latency per request (n={}, mean {:.0} tokens): p50 {:.1} ms  p99 {:.1} ms",
        ms.len(),
        tokens as f64 / ms.len().max(1) as f64,
        percentile_of(&ms, 50.0).unwrap_or(0.0),
        percentile_of(&ms, 99.0).unwrap_or(0.0)
    );
    Ok(())
}

pub fn calibrate_command(args: &CalibrateArgs) -> anyhow::Result<()> {
    let rows = read_rows(&args.data)?;
    let encoder = load_encoder(&args.encoder.encoder)?;
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let x = embed(&encoder, &args.encoder.encoder, &texts)?;
    let (scorers, _) = scorers(&args.scorer, &encoder, &args.encoder.encoder)?;
    let Some((name, scorer)) = scorers.first() else {
        bail!("no scorer");
    };
    if let Some(target) = args.target_oos_recall {
        let cases = super::scope::cases(scorer.as_ref(), &rows, &x)
            .context("the scorer keeps no embeddings to compare with (retrain the head)")?;
        return super::scope::calibrate(name, &cases, target);
    }
    let (preds, _) = predict(scorer.as_ref(), &rows, &x);
    let row = match (args.target_escalation, args.target_accuracy) {
        (Some(share), _) => threshold_for_escalation(&preds, share),
        (None, Some(acc)) => threshold_for_accuracy(&preds, acc)
            .with_context(|| format!("no threshold reaches {:.1}% kept accuracy", acc * 100.0))?,
        (None, None) => bail!("give --target-escalation or --target-accuracy"),
    };
    println!(
        "{name}: threshold {:.3} escalates {:.1}% of requests; kept accuracy {:.2}%",
        row.threshold,
        row.escalated * 100.0,
        row.kept_accuracy * 100.0
    );
    println!("\npaste into the policy (before the class rules):\n");
    println!("[[policy.rules]]\nname = \"unsure\"\nroute = \"remote\"   # your escalation route");
    println!("when = {{ max_confidence = {:.3} }}", row.threshold);
    Ok(())
}
