//! A trained classification head on frozen sentence embeddings, stored as safetensors.
//!
//! Tensors `layer{i}.weight` (`[out, in]`, f32) and `layer{i}.bias` (`[out]`), ReLU between
//! layers (one layer is a softmax regression, two an MLP). The safetensors metadata holds the
//! label list (`labels`, a JSON array) and the encoder fingerprint (`encoder`); a head is
//! refused when loaded beside a different encoder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::{ClassifyError, Scorer};

const META_LABELS: &str = "labels";
const META_ENCODER: &str = "encoder";
const META_FORMAT: &str = "format";
const FORMAT: &str = "switchyard-head/1";

/// One dense layer, row-major `[out][in]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
}

impl Dense {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.bias
            .iter()
            .enumerate()
            .map(|(o, b)| {
                let row = &self.weight[o * self.inputs..(o + 1) * self.inputs];
                b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>()
            })
            .collect()
    }
}

/// A loaded head: layers, labels and the fingerprint of the encoder it was trained on.
#[derive(Debug, Clone)]
pub struct Head {
    pub labels: Vec<String>,
    pub layers: Vec<Dense>,
    pub encoder: String,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Model(format!("head {}: {why}", path.display()))
}

impl Head {
    /// Logits for one embedding.
    pub fn logits(&self, embedding: &[f32]) -> Vec<f32> {
        let mut x = embedding.to_vec();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i + 1 < self.layers.len() {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        x
    }

    /// Loads a head and checks it was trained on the encoder with `fingerprint`.
    pub fn load(path: &Path, fingerprint: &str) -> Result<Self, ClassifyError> {
        let head = Self::load_unchecked(path)?;
        if head.encoder != fingerprint {
            return Err(bad(
                path,
                format!(
                    "trained on encoder {} but the configured encoder is {fingerprint}; \
                     retrain it with `switchyard router train`",
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
        if info.get(META_FORMAT).map(String::as_str) != Some(FORMAT) {
            return Err(bad(path, "not a switchyard head (format metadata missing)"));
        }
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
        let mut layers = Vec::new();
        while let Some(w) = tensors.get(&format!("layer{}.weight", layers.len())) {
            let b = tensors
                .get(&format!("layer{}.bias", layers.len()))
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
        Ok(Self {
            labels,
            layers,
            encoder,
        })
    }

    /// Writes the head to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        let mut tensors = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let out = l.bias.len();
            let w = Tensor::from_vec(l.weight.clone(), (out, l.inputs), &Device::Cpu);
            let b = Tensor::from_vec(l.bias.clone(), out, &Device::Cpu);
            tensors.push((format!("layer{i}.weight"), w.map_err(|e| bad(path, e))?));
            tensors.push((format!("layer{i}.bias"), b.map_err(|e| bad(path, e))?));
        }
        let labels = serde_json::to_string(&self.labels).map_err(|e| bad(path, e))?;
        let info = HashMap::from([
            (META_FORMAT.to_owned(), FORMAT.to_owned()),
            (META_LABELS.to_owned(), labels),
            (META_ENCODER.to_owned(), self.encoder.clone()),
        ]);
        let bytes = safetensors::serialize(tensors, Some(info)).map_err(|e| bad(path, e))?;
        std::fs::write(path, bytes).map_err(|e| bad(path, e))
    }
}

impl Scorer for Head {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        super::softmax(&self.logits(embedding), 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_another_encoder() {
        let head = Head {
            labels: vec!["x".into(), "y".into()],
            layers: vec![Dense {
                weight: vec![1.0, 0.0, 0.0, 1.0],
                bias: vec![0.0, 0.5],
                inputs: 2,
            }],
            encoder: "abc".into(),
        };
        let dir = std::env::temp_dir().join(format!("sy-head-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.safetensors");
        head.save(&path).unwrap();
        let back = Head::load(&path, "abc").unwrap();
        assert_eq!(back.labels, head.labels);
        assert_eq!(back.verdict(&[1.0, 0.0]).unwrap().class, "x");
        assert_eq!(back.verdict(&[0.0, 1.0]).unwrap().class, "y");
        let err = Head::load(&path, "other").unwrap_err().to_string();
        assert!(err.contains("trained on encoder abc"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
