//! A linear layer over block-quantised GGUF weights: [`QLinear`]. Formats with a kernel here
//! (Q4_1, Q8_0) are repacked for the AVX-512 VNNI kernels of [`super::vnni`] when the CPU has
//! them ([`QLinear::prepare`]), or else kept as stored and run by [`super::blocks`] (AVX2 or
//! portable); either way split by output rows over the current rayon pool. Q4_K is rewritten
//! as Q4_1 at load ([`kquant`]); the other K-quants and Q4_0/Q5_0/Q5_1 are re-quantised to
//! Q8_0 when asked (`requant`). Any other format (F32, F16, BF16, or those not re-quantised)
//! falls back to candle's `QMatMul`.

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use rayon::prelude::*;

use super::blocks::{self, Acts, BlockKind};
#[cfg(target_arch = "x86_64")]
use super::vnni::{self, Packed};
use crate::LocalError;

type Result<T> = std::result::Result<T, LocalError>;

#[derive(Debug)]
enum Weights {
    /// Raw blocks, row after row.
    Blocks(BlockKind, Vec<u8>),
    /// Repacked for the AVX-512 VNNI kernels.
    #[cfg(target_arch = "x86_64")]
    Packed(Packed),
    Candle(QMatMul),
}

/// `y = x · Wᵀ` for `W` of `rows × cols` (GGUF's `[cols, rows]`).
#[derive(Debug)]
pub struct QLinear {
    pub rows: usize,
    pub cols: usize,
    w: Weights,
}

/// Output columns per parallel task, at least.
const MIN_CHUNK: usize = 16;

fn kind_of(dtype: GgmlDType) -> Option<BlockKind> {
    match dtype {
        GgmlDType::Q4_1 => Some(BlockKind::Q4_1),
        GgmlDType::Q8_0 => Some(BlockKind::Q8_0),
        _ => None,
    }
}

impl QLinear {
    /// Reads tensor `name`. Q4_K becomes Q4_1 (the same weights up to `f16` rounding of the
    /// scales). With `requant`, the block formats without a kernel here (Q4_0, Q5_0, Q5_1,
    /// Q2_K, Q3_K, Q5_K, Q6_K) are re-quantised to Q8_0 (which has one).
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        name: &str,
        requant: bool,
    ) -> Result<QLinear> {
        let info = ct
            .tensor_infos
            .get(name)
            .ok_or_else(|| LocalError::Model(format!("GGUF has no tensor {name}")))?;
        // candle holds GGUF dims reversed: `[rows, cols]`, row-major.
        let (rows, cols) = match info.shape.dims() {
            [rows, cols] => (*rows, *cols),
            d => (1, d.iter().product()),
        };
        let mut raw = |size: usize| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; size];
            r.seek(SeekFrom::Start(ct.tensor_data_offset + info.offset))
                .and_then(|_| r.read_exact(&mut buf))
                .map_err(|e| LocalError::Model(format!("reading {name}: {e}")))?;
            Ok(buf)
        };
        if let Some(kind) = kind_of(info.ggml_dtype) {
            if cols.is_multiple_of(blocks::QK) {
                let buf = raw(rows * cols / blocks::QK * kind.bytes())?;
                return Ok(QLinear::from_blocks(kind, buf, rows, cols));
            }
        }
        if info.ggml_dtype == GgmlDType::Q4K && cols.is_multiple_of(kquant::QK_K) {
            let buf = raw(rows * cols / kquant::QK_K * kquant::Q4K_BYTES)?;
            let q4_1 = kquant::q4k_to_q4_1(&buf);
            return Ok(QLinear::from_blocks(BlockKind::Q4_1, q4_1, rows, cols));
        }
        let t = ct.tensor(r, name, &Device::Cpu)?;
        let slow = matches!(
            t.dtype(),
            GgmlDType::Q4_0
                | GgmlDType::Q5_0
                | GgmlDType::Q5_1
                | GgmlDType::Q2K
                | GgmlDType::Q3K
                | GgmlDType::Q5K
                | GgmlDType::Q6K
        );
        if requant && slow && cols.is_multiple_of(blocks::QK) {
            let f = t.dequantize(&Device::Cpu)?;
            let q = QTensor::quantize(&f, GgmlDType::Q8_0)?;
            let buf = q.data()?.into_owned();
            return Ok(QLinear::from_blocks(BlockKind::Q8_0, buf, rows, cols));
        }
        Ok(QLinear {
            rows,
            cols,
            w: Weights::Candle(QMatMul::from_qtensor(t)?),
        })
    }

    /// A layer over raw blocks (`rows` rows of `cols / 32` blocks).
    pub fn from_blocks(kind: BlockKind, blocks: Vec<u8>, rows: usize, cols: usize) -> QLinear {
        QLinear {
            rows,
            cols,
            w: Weights::Blocks(kind, blocks),
        }
    }

    /// The layer in the fastest layout this CPU runs: block weights are repacked for the
    /// AVX-512 VNNI kernels when the CPU has them, unless the kernels are kept to AVX2
    /// ([`super::avx2_only`], for measuring what a CPU without AVX-512 gets).
    pub fn prepare(self) -> QLinear {
        #[cfg(target_arch = "x86_64")]
        if let Weights::Blocks(kind, b) = &self.w {
            let wanted = !super::avx2_only();
            if wanted && vnni::available() {
                return QLinear {
                    rows: self.rows,
                    cols: self.cols,
                    w: Weights::Packed(Packed::new(*kind, b, self.rows, self.cols)),
                };
            }
        }
        self
    }

    /// One layer whose rows are those of `parts` in turn, when they share a block format (and
    /// are not yet [prepared](QLinear::prepare)).
    pub fn concat(parts: Vec<QLinear>) -> std::result::Result<QLinear, Vec<QLinear>> {
        let first = match parts.first().map(|p| &p.w) {
            Some(Weights::Blocks(k, _)) => *k,
            _ => return Err(parts),
        };
        let same = parts.iter().all(|p| {
            p.cols == parts[0].cols && matches!(&p.w, Weights::Blocks(k, _) if *k == first)
        });
        if !same {
            return Err(parts);
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        let cols = parts[0].cols;
        let mut all = Vec::new();
        for p in parts {
            if let Weights::Blocks(_, b) = p.w {
                all.extend_from_slice(&b);
            }
        }
        Ok(QLinear::from_blocks(first, all, rows, cols))
    }

    /// How the weights are held and run, for tests and start-up logs: `"Q4_1"` or `"Q8_0"`
    /// (this crate's block kernels), the same with `" (VNNI)"` (repacked for AVX-512 VNNI), or
    /// `"candle F16"` and so on (candle's `QMatMul`).
    pub fn layout(&self) -> String {
        match &self.w {
            Weights::Blocks(kind, _) => format!("{kind:?}"),
            #[cfg(target_arch = "x86_64")]
            Weights::Packed(p) => format!("{:?} (VNNI)", p.kind()),
            Weights::Candle(QMatMul::QTensor(t)) => format!("candle {:?}", t.dtype()),
            Weights::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
                format!("candle {:?}", t.dtype())
            }
        }
    }

    /// Row `i` of the weights, dequantised (embedding lookup).
    pub fn row(&self, i: usize, out: &mut [f32]) -> Result<()> {
        match &self.w {
            Weights::Blocks(kind, b) => {
                let n = self.cols / blocks::QK * kind.bytes();
                blocks::dequantize_row(*kind, &b[i * n..(i + 1) * n], out);
            }
            #[cfg(target_arch = "x86_64")]
            Weights::Packed(p) => p.row(i, out),
            Weights::Candle(QMatMul::QTensor(t)) => {
                let f = t.dequantize(&Device::Cpu)?.get(i)?.to_vec1::<f32>()?;
                out.copy_from_slice(&f);
            }
            Weights::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
                let f = t
                    .get(i)?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec1::<f32>()?;
                out.copy_from_slice(&f);
            }
        }
        Ok(())
    }

    /// `x` is `n × cols` (row-major); returns `n × rows`. Parallel over the current rayon pool.
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        match &self.w {
            Weights::Blocks(..) => Ok(self.forward_q(&Acts::quantize(x, n, self.cols))),
            #[cfg(target_arch = "x86_64")]
            Weights::Packed(p) => {
                let mut out = vec![0.0; n * self.rows];
                p.matmul(&Acts::quantize(x, n, self.cols), &mut out);
                Ok(out)
            }
            Weights::Candle(m) => {
                let t = Tensor::from_slice(x, (n, self.cols), &Device::Cpu)?;
                Ok(m.forward(&t)?.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }

    /// [`QLinear::forward`] over weights as stored, on activations already quantised (other
    /// layouts give zeros).
    fn forward_q(&self, x: &Acts) -> Vec<f32> {
        let n = x.rows;
        let mut out = vec![0.0; n * self.rows];
        let Weights::Blocks(kind, w) = &self.w else {
            return out;
        };
        let row_bytes = self.cols / blocks::QK * kind.bytes();
        let threads = rayon::current_num_threads().max(1);
        // A few tasks per thread so a thread slowed by others on the machine is caught up.
        let chunk = (self.rows / (threads * 4)).max(MIN_CHUNK);
        let simd = blocks::has_simd();
        if n == 1 {
            out.par_chunks_mut(chunk)
                .zip(w.par_chunks(chunk * row_bytes))
                .for_each(|(o, w)| blocks::matmul_t(*kind, w, x, o, simd));
            return out;
        }
        // Computed transposed (`rows × n`, so each task owns one slice), then transposed back.
        let mut t = vec![0.0; n * self.rows];
        t.par_chunks_mut(chunk * n)
            .zip(w.par_chunks(chunk * row_bytes))
            .for_each(|(o, w)| blocks::matmul_t(*kind, w, x, o, simd));
        // Blocked, so that reads and writes both stay in cache.
        const B: usize = 32;
        for j0 in (0..self.rows).step_by(B) {
            let j1 = (j0 + B).min(self.rows);
            for r in 0..n {
                let o = &mut out[r * self.rows + j0..r * self.rows + j1];
                for (k, v) in o.iter_mut().enumerate() {
                    *v = t[(j0 + k) * n + r];
                }
            }
        }
        out
    }
}

pub mod kquant;
#[cfg(test)]
mod tests;
