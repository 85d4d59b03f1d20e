//! A trained classification head on frozen sentence embeddings, stored as safetensors.
//!
//! Tensors `layer{i}.weight` (`[out, in]`, f32) and `layer{i}.bias` (`[out]`), ReLU between
//! layers (one layer is a softmax regression, two an MLP). The safetensors metadata holds the
//! label list (`labels`, a JSON array) and the encoder fingerprint (`encoder`); a head is
//! refused when loaded beside a different encoder.
//!
//! A head may be an ensemble of several such networks (members) whose class probabilities are
//! averaged. A one-member head is written exactly as above (format `sluicegate-head/1`); an
//! ensemble names its tensors `member{k}.layer{i}.*` and is marked `sluicegate-head/2`, so an
//! older reader refuses it instead of misreading it. Both formats load.
//!
//! Optionally, a head keeps the embeddings of its in-scope training rows (tensor
//! `references`, `[rows, dim]`), so a request unlike all of them can be told out of scope
//! ([`Scorer::similarity`]), and names the label that means "none of these" (metadata
//! `oos_label`, from `router train --oos-label`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::{ClassifyError, Scorer};

pub use sluicegate_encoder::Dense;

const META_LABELS: &str = "labels";
const META_ENCODER: &str = "encoder";
const META_FORMAT: &str = "format";
const META_OOS: &str = "oos_label";
const REFERENCES: &str = "references";
const FORMAT: &str = "sluicegate-head/1";
const FORMAT_ENSEMBLE: &str = "sluicegate-head/2";

/// One network of a head: dense layers with ReLU between them.
pub type Member = Vec<Dense>;

fn member_logits(layers: &[Dense], embedding: &[f32]) -> Vec<f32> {
    let mut x = embedding.to_vec();
    for (i, layer) in layers.iter().enumerate() {
        x = layer.forward(&x);
        if i + 1 < layers.len() {
            x.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
    x
}

/// A loaded head: its member networks, labels and the fingerprint of the encoder it was
/// trained on.
#[derive(Debug, Clone)]
pub struct Head {
    pub labels: Vec<String>,
    /// One or more networks; [`Scorer::probabilities`] averages their softmax outputs.
    pub members: Vec<Member>,
    pub encoder: String,
    /// Unit-length embeddings of the in-scope rows it was trained on (may be empty); rows are
    /// normalised when loaded, so [`Scorer::similarity`] needs only dot products.
    pub references: Vec<Vec<f32>>,
    /// The label that means out of scope, if it was trained with one.
    pub oos_label: Option<String>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Model(format!("head {}: {why}", path.display()))
}

impl Head {
    /// A head of one network.
    pub fn single(labels: Vec<String>, layers: Member, encoder: String) -> Self {
        Self {
            labels,
            members: vec![layers],
            encoder,
            references: Vec::new(),
            oos_label: None,
        }
    }

    /// Each member's logits for one embedding.
    pub fn member_logits(&self, embedding: &[f32]) -> Vec<Vec<f32>> {
        self.members
            .iter()
            .map(|m| member_logits(m, embedding))
            .collect()
    }

    /// Loads a head and checks it was trained on the encoder with `fingerprint`.
    pub fn load(path: &Path, fingerprint: &str) -> Result<Self, ClassifyError> {
        let head = Self::load_unchecked(path)?;
        if head.encoder != fingerprint {
            return Err(bad(
                path,
                format!(
                    "trained on encoder {} but the configured encoder is {fingerprint}; \
                     retrain it with `sluicegate router train`",
                    head.encoder
                ),
            ));
        }
        Ok(head)
    }

    /// Loads a head without the encoder check (for inspection).
    pub fn load_unchecked(path: &Path) -> Result<Self, ClassifyError> {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e))?;
        let info = meta.metadata().clone().unwrap_or_default();
        let ensemble = match info.get(META_FORMAT).map(String::as_str) {
            Some(FORMAT) => false,
            Some(FORMAT_ENSEMBLE) => true,
            _ => return Err(bad(path, "not a sluicegate head (format metadata missing)")),
        };
        let labels: Vec<String> = info
            .get(META_LABELS)
            .map(|l| serde_json::from_str(l))
            .transpose()
            .map_err(|e| bad(path, e))?
            .ok_or_else(|| bad(path, "no label list"))?;
        let encoder = info
            .get(META_ENCODER)
            .cloned()
            .ok_or_else(|| bad(path, "no encoder fingerprint"))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| bad(path, e))?;
        let read_member = |prefix: &str| -> Result<Member, ClassifyError> {
            let mut layers = Vec::new();
            while let Some(w) = tensors.get(&format!("{prefix}layer{}.weight", layers.len())) {
                let b = tensors
                    .get(&format!("{prefix}layer{}.bias", layers.len()))
                    .ok_or_else(|| bad(path, "weight without bias"))?;
                let (_, inputs) = w.dims2().map_err(|e| bad(path, e))?;
                let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
                layers.push(Dense {
                    weight: flat(w).map_err(|e| bad(path, e))?,
                    bias: flat(b).map_err(|e| bad(path, e))?,
                    inputs,
                });
            }
            if layers.last().map(|l| l.bias.len()) != Some(labels.len()) {
                return Err(bad(path, "output size does not match the label list"));
            }
            Ok(layers)
        };
        let members = if ensemble {
            let mut members = Vec::new();
            while tensors.contains_key(&format!("member{}.layer0.weight", members.len())) {
                members.push(read_member(&format!("member{}.", members.len()))?);
            }
            if members.is_empty() {
                return Err(bad(path, "an ensemble head without members"));
            }
            members
        } else {
            vec![read_member("")?]
        };
        let mut references = match tensors.get(REFERENCES) {
            None => Vec::new(),
            Some(t) => t
                .to_vec2::<f32>()
                .map_err(|e| bad(path, format!("references: {e}")))?,
        };
        for r in &mut references {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let oos_label = info.get(META_OOS).cloned();
        if let Some(oos) = &oos_label {
            if !labels.contains(oos) {
                return Err(bad(
                    path,
                    format!("out-of-scope label {oos:?} is not a label"),
                ));
            }
        }
        Ok(Self {
            labels,
            members,
            encoder,
            references,
            oos_label,
        })
    }

    /// Writes the head to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        let ensemble = self.members.len() > 1;
        let mut tensors = Vec::new();
        for (k, member) in self.members.iter().enumerate() {
            let prefix = if ensemble {
                format!("member{k}.")
            } else {
                String::new()
            };
            for (i, l) in member.iter().enumerate() {
                let out = l.bias.len();
                let w = Tensor::from_vec(l.weight.clone(), (out, l.inputs), &Device::Cpu);
                let b = Tensor::from_vec(l.bias.clone(), out, &Device::Cpu);
                tensors.push((
                    format!("{prefix}layer{i}.weight"),
                    w.map_err(|e| bad(path, e))?,
                ));
                tensors.push((
                    format!("{prefix}layer{i}.bias"),
                    b.map_err(|e| bad(path, e))?,
                ));
            }
        }
        if let Some(dim) = self.references.first().map(Vec::len) {
            let flat: Vec<f32> = self.references.iter().flatten().copied().collect();
            let t = Tensor::from_vec(flat, (self.references.len(), dim), &Device::Cpu);
            tensors.push((REFERENCES.to_owned(), t.map_err(|e| bad(path, e))?));
        }
        let labels = serde_json::to_string(&self.labels).map_err(|e| bad(path, e))?;
        let format = if ensemble { FORMAT_ENSEMBLE } else { FORMAT };
        let mut info = HashMap::from([
            (META_FORMAT.to_owned(), format.to_owned()),
            (META_LABELS.to_owned(), labels),
            (META_ENCODER.to_owned(), self.encoder.clone()),
        ]);
        if let Some(oos) = &self.oos_label {
            info.insert(META_OOS.to_owned(), oos.clone());
        }
        let bytes = safetensors::serialize(tensors, Some(info)).map_err(|e| bad(path, e))?;
        std::fs::write(path, bytes).map_err(|e| bad(path, e))
    }
}

impl Scorer for Head {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        let mut mean = vec![0.0f32; self.labels.len()];
        for logits in self.member_logits(embedding) {
            let probs = super::softmax(&logits, 1.0);
            mean.iter_mut().zip(probs).for_each(|(m, p)| *m += p);
        }
        let n = self.members.len().max(1) as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        mean
    }

    /// The cosine to the nearest reference: one vectorised pass of dot products over the unit
    /// references, divided by the query's norm once.
    fn similarity(&self, embedding: &[f32]) -> Option<f32> {
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        let best = sluicegate_encoder::dense::max_dot(&self.references, embedding)?;
        Some(if norm > 0.0 { best / norm } else { 0.0 })
    }

    fn oos_label(&self) -> Option<&str> {
        self.oos_label.as_deref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sy-head-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("h.safetensors")
    }

    fn dense(weight: Vec<f32>, bias: Vec<f32>) -> Dense {
        let inputs = weight.len() / bias.len();
        Dense {
            weight,
            bias,
            inputs,
        }
    }

    /// A two-layer member with pseudo-random weights: 5 inputs, 7 hidden, 3 classes.
    fn mlp(seed: u32) -> Member {
        let mut rng = crate::classifier::train::Rng::new(u64::from(seed));
        let mut next = move || (rng.next_u64() % 2000) as f32 / 1000.0 - 1.0;
        let mut values = |n: usize| (0..n).map(|_| next()).collect::<Vec<f32>>();
        vec![dense(values(35), values(7)), dense(values(21), values(3))]
    }

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn round_trips_and_refuses_another_encoder() {
        let head = Head::single(
            vec!["x".into(), "y".into()],
            vec![dense(vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.5])],
            "abc".into(),
        );
        let path = temp("single");
        head.save(&path).unwrap();
        let back = Head::load(&path, "abc").unwrap();
        assert_eq!(back.labels, head.labels);
        assert_eq!(back.members.len(), 1);
        assert_eq!(back.verdict(&[1.0, 0.0]).unwrap().class, "x");
        assert_eq!(back.verdict(&[0.0, 1.0]).unwrap().class, "y");
        let err = Head::load(&path, "other").unwrap_err().to_string();
        assert!(err.contains("trained on encoder abc"), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn loads_a_single_network_file_written_by_the_first_format() {
        // Written by hand the way heads were stored before ensembles existed.
        let member = mlp(3);
        let mut tensors = Vec::new();
        for (i, l) in member.iter().enumerate() {
            let (out, inputs) = (l.bias.len(), l.inputs);
            let w = Tensor::from_vec(l.weight.clone(), (out, inputs), &Device::Cpu).unwrap();
            let b = Tensor::from_vec(l.bias.clone(), out, &Device::Cpu).unwrap();
            tensors.push((format!("layer{i}.weight"), w));
            tensors.push((format!("layer{i}.bias"), b));
        }
        let info = HashMap::from([
            ("format".to_owned(), "sluicegate-head/1".to_owned()),
            ("labels".to_owned(), r#"["a","b","c"]"#.to_owned()),
            ("encoder".to_owned(), "fp".to_owned()),
        ]);
        let path = temp("v1");
        std::fs::write(&path, safetensors::serialize(tensors, Some(info)).unwrap()).unwrap();
        let back = Head::load(&path, "fp").unwrap();
        let head = Head::single(labels(), member, "fp".into());
        assert_eq!(back.members.len(), 1);
        let x = [0.3, -0.2, 0.9, 0.1, -0.5];
        assert_eq!(back.probabilities(&x), head.probabilities(&x));
        // A one-network head is still written in the first format.
        head.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let info = meta.metadata().clone().unwrap();
        assert_eq!(info["format"], "sluicegate-head/1");
        assert!(meta.tensors().contains_key("layer0.weight"));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn an_ensemble_averages_its_members_probabilities() {
        let members: Vec<Member> = (1..=3).map(mlp).collect();
        let head = Head {
            members: members.clone(),
            ..Head::single(labels(), Vec::new(), "fp".into())
        };
        let x = [0.5, 0.1, -0.7, 0.2, 0.05];
        let mut expected = [0.0f32; 3];
        for m in members {
            let p = Head::single(labels(), m, "fp".into()).probabilities(&x);
            expected.iter_mut().zip(p).for_each(|(e, p)| *e += p / 3.0);
        }
        let got = head.probabilities(&x);
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
        assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // Not the softmax of the mean logits, nor any single member.
        let first = Head::single(labels(), mlp(1), "fp".into()).probabilities(&x);
        assert!(got.iter().zip(&first).any(|(g, f)| (g - f).abs() > 1e-3));
    }

    #[test]
    fn an_ensemble_round_trips_with_identical_outputs() {
        let head = Head {
            members: (1..=4).map(mlp).collect(),
            references: vec![vec![1.0, 0.0, 0.0, 0.0, 0.0], vec![0.0, 0.6, 0.8, 0.0, 0.0]],
            oos_label: Some("c".into()),
            ..Head::single(labels(), Vec::new(), "fp".into())
        };
        let path = temp("ensemble");
        head.save(&path).unwrap();
        let back = Head::load(&path, "fp").unwrap();
        assert_eq!(back.members.len(), 4);
        for x in [[0.1, 0.2, 0.3, 0.4, 0.5], [-1.0, 0.0, 1.0, 0.5, -0.5]] {
            assert_eq!(back.probabilities(&x), head.probabilities(&x));
            assert_eq!(back.member_logits(&x), head.member_logits(&x));
        }
        assert_eq!(back.references, head.references);
        assert_eq!(back.oos_label.as_deref(), Some("c"));
        // The nearest reference: cosine 0.6 * 0.6 + 0.8 * 0.8 = 1 with the second one.
        let near = back.similarity(&[0.0, 0.6, 0.8, 0.0, 0.0]).unwrap();
        assert!((near - 1.0).abs() < 1e-6, "{near}");
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            meta.metadata().clone().unwrap()["format"],
            "sluicegate-head/2"
        );
        // A reader that knows only the first format finds no `layer0.weight` in it.
        assert!(!meta.tensors().contains_key("layer0.weight"));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
