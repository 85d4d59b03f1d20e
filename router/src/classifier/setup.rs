//! Builds the scorer a policy's `[classifier]` asks for: its trained head (checked against the
//! encoder's fingerprint) or its classes' examples, embedded once and cached by content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluicegate_policies::{ClassifierConfig, ExampleMatch};

use sluicegate_encoder::{cache, Encoder, EncoderHandle, ServiceOptions, Setup};

use super::{ClassifyError, ExampleScorer, ExampleStrategy, Head, Scoped, Scorer};

/// The scorer for `config`, using the loaded `encoder` to embed class examples.
pub fn scorer_for(
    config: &ClassifierConfig,
    encoder: &Encoder,
) -> Result<Arc<dyn Scorer>, ClassifyError> {
    let scorer = unscoped(config, encoder)?;
    Ok(match config.min_similarity {
        Some(min) => Arc::new(Scoped::new(scorer, min)),
        None => scorer,
    })
}

/// The scorer without the `min_similarity` threshold.
fn unscoped(
    config: &ClassifierConfig,
    encoder: &Encoder,
) -> Result<Arc<dyn Scorer>, ClassifyError> {
    if let Some(head) = &config.head {
        return Ok(Arc::new(Head::load(head, encoder.fingerprint())?));
    }
    let dir = cache::dir_for(&config.encoder);
    let mut classes = Vec::new();
    for (name, class) in &config.classes {
        let examples: Vec<&str> = class
            .examples
            .iter()
            .map(String::as_str)
            .filter(|e| !e.trim().is_empty())
            .collect();
        classes.push((
            name.clone(),
            cache::embed_cached(encoder, &dir, &examples, |_| {})?,
        ));
    }
    let examples: usize = classes.iter().map(|(_, e)| e.len()).sum();
    let average = examples / classes.len().max(1);
    let strategy = match config.matching {
        ExampleMatch::Auto if average >= ExampleMatch::AUTO_KNN_FROM => ExampleStrategy::Knn(3),
        ExampleMatch::Auto | ExampleMatch::Centroid => ExampleStrategy::Centroid,
        ExampleMatch::Knn(k) => ExampleStrategy::Knn(k),
    };
    let scorer = ExampleScorer::new(classes, strategy);
    // With `min_similarity`, familiarity is the similarity's job: the confidence says only
    // how clearly the best class beats the others (no "none of them" share).
    Ok(Arc::new(match config.min_similarity {
        Some(_) => scorer.with_floor(-1.0),
        None => scorer,
    }))
}

/// The encoder directory `path` names: itself when it exists, else what follows its last
/// `models` component under `$SLUICEGATE_MODELS`, then under `./models` (so the default
/// policy's `models/minilm` is found from a checkout, from `scripts/fetch-models`' folder, and
/// when a copy of the policy in another directory is loaded with `--config`). When none
/// exists, `path` itself, for the error to name.
pub fn resolve_encoder(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_owned();
    }
    let parts: Vec<_> = path.components().collect();
    let Some(at) = parts.iter().rposition(|c| c.as_os_str() == "models") else {
        return path.to_owned();
    };
    let rest: PathBuf = parts[at + 1..].iter().collect();
    let roots = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("models")]);
    roots
        .map(|root| root.join(&rest))
        .find(|candidate| candidate.is_dir())
        .unwrap_or_else(|| path.to_owned())
}

/// Starts the encoder service for `config` (its encoder found with [`resolve_encoder`]);
/// returns at once (health `Loading`).
pub fn start(config: &ClassifierConfig) -> EncoderHandle {
    let options = ServiceOptions {
        timeout: config.timeout,
        ..ServiceOptions::default()
    };
    let mut owned = config.clone();
    owned.encoder = resolve_encoder(&config.encoder);
    let dir = owned.encoder.clone();
    let setup: Setup = Box::new(move |encoder: &Encoder| scorer_for(&owned, encoder));
    EncoderHandle::start(dir, options, setup)
}
