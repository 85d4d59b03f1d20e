//! candle's own `BertModel`, as it comes: the correctness oracle of the fused encoder
//! ([`crate::fused`]) and the baseline its benchmark is measured against. Not used to serve.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::BertModel;

use crate::model::EncoderFiles;
use crate::ClassifyError;

fn model_error(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Model(e.to_string())
}

/// all-MiniLM-L6-v2 through `candle_transformers::models::bert::BertModel`.
pub struct CandleBert {
    model: BertModel,
}

impl std::fmt::Debug for CandleBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleBert").finish_non_exhaustive()
    }
}

impl CandleBert {
    pub fn load(dir: &Path) -> Result<Self, ClassifyError> {
        let (config, vb) = EncoderFiles::in_dir(dir).open()?;
        let model = BertModel::load(vb, &config).map_err(model_error)?;
        Ok(Self { model })
    }

    /// Mean-pooled, L2-normalised embeddings; the batch is padded to its longest input and
    /// masked.
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        if longest == 0 {
            return Ok(vec![Vec::new(); ids.len()]);
        }
        let n = ids.len();
        let mut flat_ids = vec![0u32; n * longest];
        let mut flat_mask = vec![0u32; n * longest];
        for (row, seq) in ids.iter().enumerate() {
            flat_ids[row * longest..row * longest + seq.len()].copy_from_slice(seq);
            flat_mask[row * longest..row * longest + seq.len()].fill(1);
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let input = Tensor::from_vec(flat_ids, (n, longest), &Device::Cpu)?;
            let mask = Tensor::from_vec(flat_mask, (n, longest), &Device::Cpu)?;
            let types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.affine(1.0, 1e-12)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(model_error)
    }
}
