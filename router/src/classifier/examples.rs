//! Classes declared by example utterances: classify by similarity, no training.
//!
//! Two strategies, measured on banking77 (see `switchyard router eval --examples-per-class`):
//! the centroid of a class's example embeddings, or the mean similarity of the `k` nearest
//! examples of each class. Similarities become probabilities by a softmax with a temperature.

use super::{cosine, Scorer};

/// How class scores are computed from example embeddings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExampleStrategy {
    /// Cosine similarity to the normalised mean of the class's examples.
    Centroid,
    /// Mean cosine similarity of the `k` most similar examples of the class.
    Knn(usize),
}

/// Default softmax temperature over cosine similarities: a similarity gap of 0.1 is a factor
/// e^2 ≈ 7 in probability.
pub const DEFAULT_TEMPERATURE: f32 = 0.05;

/// Scores an embedding against the embedded examples of each class.
#[derive(Debug, Clone)]
pub struct ExampleScorer {
    labels: Vec<String>,
    /// Per class: its example embeddings (unit length).
    examples: Vec<Vec<Vec<f32>>>,
    /// Per class: its normalised centroid.
    centroids: Vec<Vec<f32>>,
    strategy: ExampleStrategy,
    temperature: f32,
}

impl ExampleScorer {
    /// `classes`: each class name with its example embeddings. Classes without examples are
    /// dropped.
    pub fn new(classes: Vec<(String, Vec<Vec<f32>>)>, strategy: ExampleStrategy) -> Self {
        let classes: Vec<_> = classes.into_iter().filter(|(_, e)| !e.is_empty()).collect();
        let centroids = classes.iter().map(|(_, e)| centroid(e)).collect();
        let (labels, examples) = classes.into_iter().unzip();
        Self {
            labels,
            examples,
            centroids,
            strategy,
            temperature: DEFAULT_TEMPERATURE,
        }
    }

    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    /// Raw similarity score per class.
    pub fn scores(&self, q: &[f32]) -> Vec<f32> {
        match self.strategy {
            ExampleStrategy::Centroid => self.centroids.iter().map(|c| cosine(q, c)).collect(),
            ExampleStrategy::Knn(k) => self
                .examples
                .iter()
                .map(|class| {
                    let mut sims: Vec<f32> = class.iter().map(|e| cosine(q, e)).collect();
                    sims.sort_by(|a, b| b.total_cmp(a));
                    let k = k.clamp(1, sims.len().max(1));
                    sims.iter().take(k).sum::<f32>() / k as f32
                })
                .collect(),
        }
    }
}

fn centroid(examples: &[Vec<f32>]) -> Vec<f32> {
    let dim = examples.first().map_or(0, Vec::len);
    let mut c = vec![0.0f32; dim];
    for e in examples {
        for (a, b) in c.iter_mut().zip(e) {
            *a += b;
        }
    }
    let norm = c.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        c.iter_mut().for_each(|x| *x /= norm);
    }
    c
}

impl Scorer for ExampleScorer {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        super::softmax(&self.scores(embedding), self.temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn nearest_class_wins_with_both_strategies() {
        let classes = vec![
            ("a".to_owned(), vec![unit(&[1.0, 0.1]), unit(&[1.0, -0.1])]),
            ("b".to_owned(), vec![unit(&[0.0, 1.0])]),
            ("empty".to_owned(), vec![]),
        ];
        for strategy in [ExampleStrategy::Centroid, ExampleStrategy::Knn(3)] {
            let s = ExampleScorer::new(classes.clone(), strategy);
            assert_eq!(s.labels(), ["a", "b"]);
            let v = s.verdict(&unit(&[0.9, 0.2])).unwrap();
            assert_eq!(v.class, "a");
            assert!(v.confidence > 0.9, "{v:?}");
            let p: f32 = s.probabilities(&unit(&[0.2, 0.9])).iter().sum();
            assert!((p - 1.0).abs() < 1e-5);
            assert_eq!(s.verdict(&unit(&[0.1, 1.0])).unwrap().class, "b");
        }
    }
}
