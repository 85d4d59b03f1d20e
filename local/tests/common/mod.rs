//! Shared by the model tests: our forward pass and candle's `quantized_llama` on one GGUF file,
//! step by step, the mean next-token loss of a text under each, and GGUF files rewritten with
//! tensors or metadata changed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use candle_core::quantized::{gguf_file, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use sluicegate_local::model::{Llama, Step, WeightFormat};

/// Plain English prose, for the next-token loss.
pub const PROSE: &str =
    "The harbour town woke early. By six the fishing boats had left, and the baker \
        on Quay Street had sold his first forty loaves. Tourists would not arrive until the \
        ferry at ten, so for a few hours the streets belonged to the people who lived there.\n\n\
        To compute the area of a circle, square the radius and multiply by pi. A circle with \
        a radius of 3 metres therefore covers about 28.27 square metres. Doubling the radius \
        makes the area four times larger.";

pub fn load_ours(path: &Path, format: WeightFormat) -> Llama {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    Llama::from_gguf(&ct, &mut f, format).unwrap()
}

pub fn load_candle(path: &Path) -> ModelWeights {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap()
}

/// The logits after a prefill of all but the last token, then after decoding the last.
pub fn ours_two_steps(m: &Llama, prompt: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let (head, tail) = prompt.split_at(prompt.len() - 1);
    let mut cache = m.new_cache();
    let mut step = |tokens: &[u32]| {
        let l = m
            .forward(&mut [Step {
                cache: &mut cache,
                tokens,
            }])
            .unwrap();
        Llama::row(&l, 0).unwrap()
    };
    (step(head), step(tail))
}

pub fn candle_two_steps(m: &mut ModelWeights, prompt: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let (head, tail) = prompt.split_at(prompt.len() - 1);
    let mut step = |tokens: &[u32], pos: usize| -> Vec<f32> {
        let x = Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        m.forward(&x, pos)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    (step(head, 0), step(tail, head.len()))
}

/// `-ln softmax(row)[next]`.
pub fn loss(row: &[f32], next: u32) -> f64 {
    let max = row.iter().copied().fold(f32::MIN, f32::max);
    let sum: f64 = row.iter().map(|x| f64::from(x - max).exp()).sum();
    f64::from(max) + sum.ln() - f64::from(row[next as usize])
}

/// Mean next-token loss over `ids`, token by token, ours (weights held as `format`) and
/// candle's.
pub fn losses(path: &Path, ids: &[u32], format: WeightFormat) -> (f64, f64) {
    let ours = load_ours(path, format);
    let mut theirs = load_candle(path);
    let mut cache = ours.new_cache();
    let (mut a, mut b) = (0.0, 0.0);
    for (i, pair) in ids.windows(2).enumerate() {
        let l = ours
            .forward(&mut [Step {
                cache: &mut cache,
                tokens: &pair[..1],
            }])
            .unwrap();
        a += loss(&Llama::row(&l, 0).unwrap(), pair[1]);
        let x = Tensor::new(&pair[..1], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = theirs.forward(&x, i).unwrap();
        b += loss(&l.squeeze(0).unwrap().to_vec1::<f32>().unwrap(), pair[1]);
    }
    let n = (ids.len() - 1) as f64;
    (a / n, b / n)
}

/// A copy of the GGUF file `src` as `name` in the temporary directory (the caller removes it):
/// each tensor passed through `edit` (name, tensor), then `add`ed ones, and the metadata
/// with `set` applied (a key set again is replaced).
pub fn rewrite(
    src: &Path,
    name: &str,
    mut edit: impl FnMut(&str, QTensor) -> QTensor,
    add: Vec<(String, QTensor)>,
    set: Vec<(String, gguf_file::Value)>,
) -> std::path::PathBuf {
    let mut r = std::fs::File::open(src).unwrap();
    let mut ct = gguf_file::Content::read(&mut r).unwrap();
    let mut names: Vec<String> = ct.tensor_infos.keys().cloned().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = names
        .into_iter()
        .map(|n| {
            let t = ct.tensor(&mut r, &n, &Device::Cpu).unwrap();
            let t = edit(&n, t);
            (n, t)
        })
        .collect();
    tensors.extend(add);
    for (k, v) in set {
        ct.metadata.insert(k, v);
    }
    let path = std::env::temp_dir().join(format!("{name}-{}.gguf", std::process::id()));
    let md: Vec<(&str, &gguf_file::Value)> =
        ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &md, &ts).unwrap();
    path
}

/// A 1-D F32 tensor of `v`, for [`rewrite`].
pub fn f32_tensor(v: &[f32]) -> QTensor {
    let t = Tensor::new(v, &Device::Cpu).unwrap();
    QTensor::quantize(&t, candle_core::quantized::GgmlDType::F32).unwrap()
}

/// The model in `path` loaded to serve `context` positions.
pub fn load_for(path: &Path, context: usize) -> Llama {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    Llama::load_for_context(&ct, &mut f, WeightFormat::Q8_0, 2, context).unwrap()
}

/// The error loading the file `path` with metadata `set` applied gives.
pub fn load_error(path: &Path, set: Vec<(String, gguf_file::Value)>) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut ct = gguf_file::Content::read(&mut f).unwrap();
    for (k, v) in set {
        ct.metadata.insert(k, v);
    }
    Llama::from_gguf(&ct, &mut f, WeightFormat::Q8_0)
        .unwrap_err()
        .to_string()
}
