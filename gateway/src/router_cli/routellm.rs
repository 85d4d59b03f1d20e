//! `sluicegate router eval --routellm FILE`: escalation economics on RouteLLM's data.
//!
//! A head learns "the small model (Mixtral-8x7B) answers this right" on one part of the file.
//! On the held-out part, the prompts the head trusts least go to the large model (GPT-4): for
//! each share sent to the large model, quality is the share answered right, against random
//! routing (which mixes the two models' accuracies linearly).

use std::path::Path;

use anyhow::bail;
use sluicegate_router::classifier::train::{Rng, TrainOptions};
use sluicegate_router::classifier::Scorer;

use super::{embed, load_encoder, read_rows, train_head};

const SMALL_RIGHT: &str = "small-right";
const SMALL_WRONG: &str = "small-wrong";

pub fn run(file: &Path, train_share: f32, encoder_dir: &Path) -> anyhow::Result<()> {
    let mut rows: Vec<(String, bool, bool)> = read_rows(file)?
        .into_iter()
        .filter_map(|r| Some((r.text, r.mixtral_8x7b_correct?, r.gpt4_1106_correct?)))
        .collect();
    if rows.len() < 20 {
        bail!(
            "{}: too few rows with mixtral_8x7b_correct and gpt4_1106_correct",
            file.display()
        );
    }
    Rng::new(5).shuffle(&mut rows);
    let encoder = load_encoder(encoder_dir)?;
    let texts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let x = embed(&encoder, encoder_dir, &texts)?;
    let cut = ((rows.len() as f32 * train_share) as usize).clamp(10, rows.len() - 10);
    let labels = vec![SMALL_RIGHT.to_owned(), SMALL_WRONG.to_owned()];
    let y: Vec<usize> = rows[..cut].iter().map(|r| usize::from(!r.1)).collect();
    let options = TrainOptions {
        hidden: 128,
        dropout: 0.3,
        patience: 10,
        ..TrainOptions::default()
    };
    let head = train_head(&x[..cut], &y, labels, encoder.fingerprint(), &options)?;

    // Held-out: order by P(small right), least trusted first.
    let test = &rows[cut..];
    let mut scored: Vec<(f32, bool, bool)> = test
        .iter()
        .zip(&x[cut..])
        .map(|(r, e)| (head.probabilities(e)[0], r.1, r.2))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = scored.len();
    let small = scored.iter().filter(|r| r.1).count() as f64 / n as f64;
    let large = scored.iter().filter(|r| r.2).count() as f64 / n as f64;
    // quality[k]: the k least trusted go large, the rest small.
    let mut quality = Vec::with_capacity(n + 1);
    let mut right = scored.iter().filter(|r| r.1).count() as i64;
    quality.push(right as f64 / n as f64);
    for r in &scored {
        right += i64::from(r.2) - i64::from(r.1);
        quality.push(right as f64 / n as f64);
    }
    println!(
        "{}: {} train / {n} held out; small model right {:.1}%, large {:.1}%",
        file.display(),
        cut,
        small * 100.0,
        large * 100.0
    );
    println!("share to large | quality (classifier) | quality (random)");
    for step in 0..=10 {
        let share = f64::from(step) / 10.0;
        let k = ((share * n as f64).round() as usize).min(n);
        let random = (1.0 - share) * small + share * large;
        println!(
            "  {:>5.0}%       | {:>6.2}%              | {:>6.2}%",
            share * 100.0,
            quality[k] * 100.0,
            random * 100.0
        );
    }
    let goal = 0.95 * large;
    match quality.iter().position(|q| *q >= goal) {
        Some(k) => println!(
            "95% of the large model's quality ({:.1}%): classifier sends {:.1}% to the large model",
            goal * 100.0,
            k as f64 / n as f64 * 100.0
        ),
        None => println!("95% of the large model's quality is not reached"),
    }
    let random_share = if small >= goal {
        0.0
    } else {
        (goal - small) / (large - small).max(1e-9)
    };
    println!(
        "random routing needs {:.1}% to the large model",
        random_share.min(1.0) * 100.0
    );
    Ok(())
}
