//! Classes declared by example utterances: classify by similarity, no training.
//!
//! Two strategies, measured on banking77 (see `sluicegate router eval --examples-per-class`):
//! the centroid of a class's example embeddings, or the mean similarity of the `k` nearest
//! examples of each class. Similarities become probabilities by a softmax with a temperature,
//! over the classes *and* a "none of them" option whose similarity is a fixed floor: a request
//! unlike every class's examples (cosine below the floor) gets a low confidence, however the
//! classes compare among themselves, so a `max_confidence` rule escalates it.

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

/// Default similarity of the "none of them" option. MiniLM puts paraphrases around 0.6-0.8 and
/// unrelated sentences around 0.0-0.2.
pub const DEFAULT_FLOOR: f32 = 0.35;

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
    floor: f32,
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
            floor: DEFAULT_FLOOR,
        }
    }

    /// Sets the similarity of the "none of them" option (`-1.0` turns it off).
    pub fn with_floor(mut self, floor: f32) -> Self {
        self.floor = floor;
        self
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

    /// Per class; they sum to less than 1 by the "none of them" share.
    fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        let mut scores = self.scores(embedding);
        scores.push(self.floor);
        let mut p = super::softmax(&scores, self.temperature);
        p.pop();
        p
    }

    /// The nearest example's cosine similarity, whatever the strategy.
    fn similarity(&self, embedding: &[f32]) -> Option<f32> {
        self.examples
            .iter()
            .flatten()
            .map(|e| cosine(embedding, e))
            .max_by(f32::total_cmp)
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
            assert!(p <= 1.0 && p > 0.99, "{p}");
            assert_eq!(s.verdict(&unit(&[0.1, 1.0])).unwrap().class, "b");
        }
    }

    #[test]
    fn a_request_unlike_every_class_gets_a_low_confidence() {
        let classes = vec![
            ("a".to_owned(), vec![unit(&[1.0, 0.0, 0.0])]),
            ("b".to_owned(), vec![unit(&[0.0, 1.0, 0.0])]),
        ];
        let s = ExampleScorer::new(classes, ExampleStrategy::Centroid);
        // Closer to "a" than to "b", but far from both (cosine 0.2 vs 0.0).
        let far = s.verdict(&unit(&[0.2, 0.0, 0.98])).unwrap();
        assert_eq!(far.class, "a");
        assert!(far.confidence < 0.1, "{far:?}");
        assert!((far.similarity.unwrap() - 0.2).abs() < 0.01, "{far:?}");
        let near = s.verdict(&unit(&[0.9, 0.0, 0.44])).unwrap();
        assert!(near.confidence > 0.99, "{near:?}");
        // Without the floor, the same far request looks confident.
        let s = s.with_floor(-1.0);
        assert!(s.verdict(&unit(&[0.2, 0.0, 0.98])).unwrap().confidence > 0.9);
    }
}
