//! On-disk embedding cache, keyed by content: SHA-256 of the encoder fingerprint and every
//! text. Used for a policy's class examples (a restart skips re-embedding them) and for the
//! datasets `sluicegate router train/eval` reads (10k texts take minutes on 2 cores).
//!
//! Files are `<dir>/<key>.safetensors` with one `[n, dim]` f32 tensor. The directory is
//! `$SLUICEGATE_CACHE` if set, else `.cache/` inside the encoder directory (the models folder
//! is git-ignored and already per-encoder). Every cache error is ignored: the cache only saves
//! time.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

const TENSOR: &str = "embeddings";

/// The cache directory for an encoder directory.
pub fn dir_for(encoder_dir: &Path) -> PathBuf {
    std::env::var_os("SLUICEGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| encoder_dir.join(".cache"))
}

/// The content key of `texts` embedded by the encoder with `fingerprint`.
pub fn key<S: AsRef<str>>(fingerprint: &str, texts: &[S]) -> String {
    let mut h = Sha256::new();
    h.update(fingerprint.as_bytes());
    for t in texts {
        h.update([0u8]);
        h.update(t.as_ref().as_bytes());
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cached embeddings under `key`, if present and of `n` rows.
pub fn load(dir: &Path, key: &str, n: usize) -> Option<Vec<Vec<f32>>> {
    let path = dir.join(format!("{key}.safetensors"));
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).ok()?;
    let rows: Vec<Vec<f32>> = tensors.get(TENSOR)?.to_vec2().ok()?;
    (rows.len() == n).then_some(rows)
}

/// Stores embeddings under `key`; failures are logged and ignored.
pub fn store(dir: &Path, key: &str, rows: &[Vec<f32>]) {
    let dim = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let result = std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            Tensor::from_vec(flat, (rows.len(), dim), &Device::Cpu).map_err(|e| e.to_string())
        })
        .and_then(|t| {
            let tmp = dir.join(format!("{key}.tmp{}", std::process::id()));
            candle_core::safetensors::save(&[(TENSOR, t)].into_iter().collect(), &tmp)
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, dir.join(format!("{key}.safetensors"))).map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write the embedding cache");
    }
}

/// Embeds `texts` with `encoder`, reading and filling the cache in `dir`. `progress` is
/// called with the number of texts embedded so far (not called on a cache hit).
pub fn embed_cached<S: AsRef<str>>(
    encoder: &crate::Encoder,
    dir: &Path,
    texts: &[S],
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>, crate::ClassifyError> {
    let key = key(encoder.fingerprint(), texts);
    if let Some(rows) = load(dir, &key, texts.len()) {
        return Ok(rows);
    }
    let all: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
    let mut rows = Vec::with_capacity(all.len());
    // Chunks of 512 keep the progress moving; within a chunk, batches of 32 by length.
    for chunk in all.chunks(512) {
        rows.extend(crate::service::embed_chunked(encoder, chunk, 32)?);
        progress(rows.len());
    }
    store(dir, &key, &rows);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_by_content() {
        let dir = std::env::temp_dir().join(format!("sy-cache-{}", std::process::id()));
        let k = key("fp", &["a", "b"]);
        assert_ne!(k, key("fp2", &["a", "b"]));
        assert_ne!(k, key("fp", &["ab"]));
        assert!(load(&dir, &k, 2).is_none());
        store(&dir, &k, &[vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(
            load(&dir, &k, 2),
            Some(vec![vec![1.0, 2.0], vec![3.0, 4.0]])
        );
        assert!(load(&dir, &k, 3).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
