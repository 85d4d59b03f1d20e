//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Llama 2, Mistral, Phi-3):
//! pieces with scores and `<0xNN>` byte pieces, no merge list. Built as the `tokenizers`
//! crate's BPE the way Hugging Face converts such a model: every piece that splits into two
//! pieces of the vocabulary gives a merge, ranked by the merged piece's score (higher first);
//! characters missing from the vocabulary fall back to their bytes' pieces. Spaces are `▁`
//! and a `▁` is prepended to the text (`tokenizer.ggml.add_space_prefix`, default true).

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence};
use tokenizers::Tokenizer;

use crate::LocalError;

const SPACE: &str = "\u{2581}";

/// Merges implied by `tokens` and their `scores`, best first.
fn merges(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut all: Vec<(usize, usize, f32)> = Vec::new();
    for i in order {
        let piece = tokens[i].as_str();
        let mut local: Vec<(usize, usize, f32)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(k, _)| {
                let (l, r) = piece.split_at(k);
                Some((*ids.get(l)?, *ids.get(r)?, scores[i]))
            })
            .collect();
        local.sort_by_key(|(l, r, _)| (*l, *r));
        all.extend(local);
    }
    // By score, then by the left piece's length, then the right's; all descending (stable).
    let len = |i: usize| tokens[i].chars().count();
    all.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then(len(b.0).cmp(&len(a.0)))
            .then(len(b.1).cmp(&len(a.1)))
    });
    all.into_iter()
        .map(|(l, r, _)| (tokens[l].clone(), tokens[r].clone()))
        .collect()
}

/// The tokenizer of a SentencePiece vocabulary.
pub fn build(
    tokens: &[String],
    scores: &[f32],
    unk: Option<&str>,
    add_space_prefix: bool,
) -> Result<Tokenizer, LocalError> {
    if scores.len() != tokens.len() {
        return Err(LocalError::Model(format!(
            "tokenizer.ggml.scores has {} entries for {} tokens",
            scores.len(),
            tokens.len()
        )));
    }
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges(tokens, scores))
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        bpe = bpe.unk_token(unk.to_owned());
    }
    let bpe = bpe
        .build()
        .map_err(|e| LocalError::Model(format!("SentencePiece BPE: {e}")))?;
    let mut t = Tokenizer::new(bpe);
    let bad = |e: tokenizers::Error| LocalError::Model(format!("SentencePiece: {e}"));
    let replace: NormalizerWrapper = Replace::new(" ", SPACE).map_err(bad)?.into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        Sequence::new(vec![Prepend::new(SPACE.to_owned()).into(), replace]).into()
    } else {
        replace
    };
    t.with_normalizer(Some(normalizer));
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE, " ").map_err(bad)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    t.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_rank_by_the_merged_piece_score() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
            .map(String::from)
            .to_vec();
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, -0.5];
        let m = merges(&tokens, &scores);
        // abc (-0.5) splits as a+bc and ab+c; then ab (-1), then bc (-2).
        let m: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(m, vec![("ab", "c"), ("a", "bc"), ("a", "b"), ("b", "c")]);
    }
}
