//! Builds the scorer a policy's `[classifier]` asks for: its trained head (checked against the
//! encoder's fingerprint) or its classes' examples, embedded once and cached by content.

use std::sync::Arc;

use sluicegate_policies::{ClassifierConfig, ExampleMatch};

use sluicegate_encoder::{cache, Encoder, EncoderHandle, ServiceOptions, Setup};

use super::{ClassifyError, ExampleScorer, ExampleStrategy, Head, Scorer};

/// The scorer for `config`, using the loaded `encoder` to embed class examples.
pub fn scorer_for(
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
    Ok(Arc::new(ExampleScorer::new(classes, strategy)))
}

/// Starts the encoder service for `config`; returns at once (health `Loading`).
pub fn start(config: &ClassifierConfig) -> EncoderHandle {
    let options = ServiceOptions {
        timeout: config.timeout,
        ..ServiceOptions::default()
    };
    let owned = config.clone();
    let setup: Setup = Box::new(move |encoder: &Encoder| scorer_for(&owned, encoder));
    EncoderHandle::start(config.encoder.clone(), options, setup)
}
