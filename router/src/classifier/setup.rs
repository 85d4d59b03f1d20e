//! Builds the scorer a policy's `[classifier]` asks for: its trained head (checked against the
//! encoder's fingerprint) or its classes' examples, embedded once and cached by content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluicegate_policies::{ClassifierConfig, ExampleMatch};

use sluicegate_encoder::{cache, Encoder, EncoderHandle, ServiceOptions, Setup};

use super::{ClassifyError, ExampleScorer, ExampleStrategy, Head, Scorer, Scoped};

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
fn unscoped(config: &ClassifierConfig, encoder: &Encoder) -> Result<Arc<dyn Scorer>, ClassifyError> {
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
    Ok(Arc::new(ExampleScorer::new(classes, strategy)))
}

/// The encoder directory `path` names: itself when it exists (or is absolute), else the same
/// directory under `$SLUICEGATE_MODELS` (`models/minilm` -> `$SLUICEGATE_MODELS/minilm`), as
/// a local backend's `gguf` is found.
pub fn resolve_encoder(path: &Path) -> PathBuf {
    if path.is_dir() || path.is_absolute() {
        return path.to_owned();
    }
    if let Some(dir) = std::env::var_os("SLUICEGATE_MODELS") {
        let rest = path.strip_prefix("models").unwrap_or(path);
        let candidate = PathBuf::from(dir).join(rest);
        if candidate.is_dir() {
            return candidate;
        }
    }
    path.to_owned()
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
