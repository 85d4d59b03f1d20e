//! The sentence encoder: all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims) on candle's CPU backend.
//!
//! Recipe (sentence-transformers'): WordPiece tokens → BERT → mean of the last hidden states
//! over the attention mask → L2 normalisation. The shipped `tokenizer.json` pads every input to
//! 128 tokens; that is turned off here, and a batch is not padded at all: its inputs are packed
//! into one matrix by the fused forward pass ([`crate::fused`]). Inputs longer than [`Encoder::max_tokens`] keep their
//! head and their tail (the question usually closes a long prompt).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::fused::FusedBert;
use crate::ClassifyError;

/// Token budget per input, `[CLS]` and `[SEP]` included.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Characters kept before tokenising: a 200k-token prompt is cut to head and tail first, so
/// the tokenizer never sees megabytes. Generous: WordPiece averages 4-5 characters a token.
const CHARS_PER_TOKEN_BOUND: usize = 8;

/// A loaded encoder. Not `Sync`-shared on purpose: one thread owns it (see `service`).
pub struct Encoder {
    model: FusedBert,
    tokenizer: Tokenizer,
    max_tokens: usize,
    cls: u32,
    sep: u32,
    fingerprint: String,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("max_tokens", &self.max_tokens)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn model_error(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Model(e.to_string())
}

/// The three files of an encoder directory.
#[derive(Debug, Clone)]
pub struct EncoderFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
}

impl EncoderFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            config: dir.join("config.json"),
            weights: dir.join("model.safetensors"),
            tokenizer: dir.join("tokenizer.json"),
        }
    }

    /// The model's config and its weights (f32, CPU), ready for a model to load from.
    pub fn open(&self) -> Result<(Config, VarBuilder<'static>), ClassifyError> {
        self.check()?;
        let config: Config =
            serde_json::from_slice(&std::fs::read(&self.config).map_err(model_error)?)
                .map_err(model_error)?;
        let weights = std::fs::read(&self.weights).map_err(model_error)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(model_error)?;
        Ok((config, vb))
    }

    /// Fails with a message naming the missing file and `scripts/fetch-models`.
    pub fn check(&self) -> Result<(), ClassifyError> {
        for p in [&self.config, &self.weights, &self.tokenizer] {
            if !p.is_file() {
                return Err(ClassifyError::Model(format!(
                    "encoder file {} is missing: run scripts/fetch-models",
                    p.display()
                )));
            }
        }
        Ok(())
    }
}

/// Identifies an encoder: SHA-256 of `config.json`, the weights' size and their safetensors
/// header (tensor names, shapes, offsets). Cheap (no need to hash 90 MB) and changes whenever a
/// different checkpoint is dropped in. First 16 hex digits.
pub fn fingerprint(dir: &Path) -> Result<String, ClassifyError> {
    use std::io::Read;
    let files = EncoderFiles::in_dir(dir);
    files.check()?;
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read(&files.config).map_err(model_error)?);
    let mut f = std::fs::File::open(&files.weights).map_err(model_error)?;
    let size = f.metadata().map_err(model_error)?.len();
    hasher.update(size.to_le_bytes());
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(model_error)?;
    let header_len = u64::from_le_bytes(len).min(size).min(16 << 20);
    let mut header = Vec::new();
    f.take(header_len)
        .read_to_end(&mut header)
        .map_err(model_error)?;
    hasher.update(&header);
    let digest = hasher.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

impl Encoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ClassifyError> {
        let files = EncoderFiles::in_dir(dir);
        // Fails first, naming a missing file and `scripts/fetch-models`.
        let fingerprint = fingerprint(dir)?;
        let (config, vb) = files.open()?;
        let model = FusedBert::load(vb, &config).map_err(model_error)?;
        let mut tokenizer = Tokenizer::from_file(&files.tokenizer).map_err(model_error)?;
        // We truncate ourselves (head + tail) and never pad (inputs are packed).
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(model_error)?;
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| model_error(format!("tokenizer has no {t} token")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        Ok(Self {
            max_tokens: DEFAULT_MAX_TOKENS.min(model.max_positions()),
            model,
            tokenizer,
            cls,
            sep,
            fingerprint,
        })
    }

    /// Token budget per input, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// WordPiece ids of `text` within the budget: `[CLS] head … tail [SEP]`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ClassifyError> {
        let text = trim_chars(text, self.max_tokens * CHARS_PER_TOKEN_BOUND);
        let enc = self
            .tokenizer
            .encode(text.as_ref(), false)
            .map_err(model_error)?;
        let ids = enc.get_ids();
        let room = self.max_tokens.saturating_sub(2);
        let mut out = Vec::with_capacity(ids.len().min(room) + 2);
        out.push(self.cls);
        if ids.len() <= room {
            out.extend_from_slice(ids);
        } else {
            let head = room / 2;
            out.extend_from_slice(&ids[..head]);
            out.extend_from_slice(&ids[ids.len() - (room - head)..]);
        }
        out.push(self.sep);
        Ok(out)
    }

    /// Embeds a batch: one unit-length 384-dim vector per text, in order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_ids(&ids)
    }

    /// Embeds pre-tokenised inputs (see [`Encoder::token_ids`]) in one packed forward pass.
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.model.embed(ids).map_err(model_error)
    }
}

/// Cuts `text` to at most `max_chars` characters, keeping the head and the tail.
pub fn trim_chars(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    let total = text.chars().count();
    if total <= max_chars {
        return std::borrow::Cow::Borrowed(text);
    }
    let head = max_chars / 2;
    let tail = max_chars - head;
    let mut out: String = text.chars().take(head).collect();
    out.push_str(" … ");
    out.extend(text.chars().skip(total - tail));
    std::borrow::Cow::Owned(out)
}

/// Cosine similarity of two vectors (dot product when both are unit length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
