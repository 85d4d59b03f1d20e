//! The tokenizer, rebuilt from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Two kinds of vocabulary: byte-level BPE (`tokenizer.ggml.model = "gpt2"`: GPT-2, SmolLM,
//! StarCoder, Llama 3, Qwen2/2.5/3, Falcon), split first by the family's regular expressions
//! ([`pre`], chosen by `tokenizer.ggml.pre`); and SentencePiece (`"llama"`: Llama 2, Mistral,
//! Phi-3, Gemma 3 with `tokenizer.ggml.add_space_prefix = false`), [`spm`]. Control tokens (`token_type` 3) are special tokens and user-defined ones
//! (4) are matched whole, both before anything else. Anything else is refused, naming it.

mod pieces;
mod pre;
mod spm;

pub use pieces::Pieces;

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::LocalError;

/// `tokenizer.ggml.token_type` of a control token.
const CONTROL: i32 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token (matched whole, not special).
const USER_DEFINED: i32 = 4;

/// A tokenizer with the ids the chat loop needs.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    inner: Tokenizer,
    /// End-of-sequence ids: `tokenizer.ggml.eos_token_id`, `eot_token_id` and `eom_token_id`,
    /// plus, when present, `<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, `<|end|>` (Phi-3) and
    /// `<end_of_turn>` (Gemma).
    pub eos: Vec<u32>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// The bytes of each token, for constrained decoding.
    pub pieces: Pieces,
}

fn meta<'a>(ct: &'a Content, key: &str) -> Result<&'a Value, LocalError> {
    ct.metadata
        .get(key)
        .ok_or_else(|| LocalError::Model(format!("GGUF metadata has no {key}")))
}

fn strings(value: &Value, key: &str) -> Result<Vec<String>, LocalError> {
    let bad = |e: candle_core::Error| LocalError::Model(format!("{key}: {e}"));
    value
        .to_vec()
        .map_err(bad)?
        .iter()
        .map(|v| v.to_string().cloned().map_err(bad))
        .collect()
}

fn id(ct: &Content, key: &str) -> Option<u32> {
    let v = ct.metadata.get(key)?;
    v.to_u32()
        .ok()
        .or_else(|| v.to_i32().ok().and_then(|i| u32::try_from(i).ok()))
}

/// Byte-level BPE from `tokenizer.ggml.merges`, pre-tokenized as `tokenizer.ggml.pre` says.
fn byte_level_bpe(ct: &Content, tokens: &[String]) -> Result<Tokenizer, LocalError> {
    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let merges = strings(meta(ct, "tokenizer.ggml.merges")?, "tokenizer.ggml.merges")?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| LocalError::Model(format!("malformed merge {m:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre::ignores_merges(pre))
        .build()
        .map_err(|e| LocalError::Model(format!("BPE: {e}")))?;
    let mut inner = Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre::for_name(pre)?));
    inner.with_decoder(Some(ByteLevel::new(false, true, true)));
    Ok(inner)
}

impl GgufTokenizer {
    pub fn from_gguf(ct: &Content) -> Result<Self, LocalError> {
        let model = meta(ct, "tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| LocalError::Model(e.to_string()))?
            .clone();
        let tokens = strings(meta(ct, "tokenizer.ggml.tokens")?, "tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| LocalError::Model(e.to_string()))?
                .iter()
                .map(|t| t.to_i32().unwrap_or(1))
                .collect(),
            None => Vec::new(),
        };
        let mut inner = match model.as_str() {
            "gpt2" => byte_level_bpe(ct, &tokens)?,
            "llama" => {
                let scores: Vec<f32> = meta(ct, "tokenizer.ggml.scores")?
                    .to_vec()
                    .map_err(|e| LocalError::Model(format!("tokenizer.ggml.scores: {e}")))?
                    .iter()
                    .map(|v| v.to_f32().unwrap_or(0.0))
                    .collect();
                let unk = id(ct, "tokenizer.ggml.unknown_token_id")
                    .and_then(|i| tokens.get(i as usize))
                    .map(String::as_str);
                let prefix = ct
                    .metadata
                    .get("tokenizer.ggml.add_space_prefix")
                    .and_then(|v| v.to_bool().ok())
                    .unwrap_or(true);
                spm::build(&tokens, &scores, unk, prefix)?
            }
            other => {
                return Err(LocalError::Model(format!(
                    "tokenizer.ggml.model {other:?} is not supported (byte-level BPE \"gpt2\" \
                     and SentencePiece \"llama\" are)"
                )))
            }
        };
        let of_type = |wanted: i32| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, t)| **t == wanted)
                .map(|(tok, _)| AddedToken::from(tok.clone(), wanted == CONTROL))
                .collect()
        };
        inner.add_special_tokens(&of_type(CONTROL));
        inner.add_tokens(&of_type(USER_DEFINED));

        let by_name: HashMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let eos_id = id(ct, "tokenizer.ggml.eos_token_id");
        let bos_id = id(ct, "tokenizer.ggml.bos_token_id");
        let mut eos: Vec<u32> = Vec::new();
        let turn_ends = [
            "<|im_end|>",
            "<|eot_id|>",
            "<|endoftext|>",
            "<|end|>",
            "<end_of_turn>",
        ];
        let named = turn_ends.iter().filter_map(|n| by_name.get(n).copied());
        let keyed = ["eot_token_id", "eom_token_id"]
            .iter()
            .filter_map(|k| id(ct, &format!("tokenizer.ggml.{k}")));
        for i in eos_id.into_iter().chain(keyed).chain(named) {
            if !eos.contains(&i) && (i as usize) < tokens.len() {
                eos.push(i);
            }
        }
        let name_of = |i: Option<u32>| i.and_then(|i| tokens.get(i as usize)).cloned();
        Ok(GgufTokenizer {
            inner,
            eos,
            bos_token: name_of(bos_id),
            eos_token: name_of(eos_id),
            pieces: pieces::pieces(&model, &tokens, &types),
        })
    }

    /// Token ids of `text`; special tokens written in the text are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LocalError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LocalError::Model(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LocalError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| LocalError::Model(format!("tokenizer: {e}")))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Turns generated ids into text as they come, never splitting a UTF-8 character.
#[derive(Debug, Default)]
pub struct Detokenizer {
    ids: Vec<u32>,
    /// Start of the window decoded for context.
    prefix: usize,
    /// Ids before this have been emitted as text.
    read: usize,
}

impl Detokenizer {
    /// Adds one id and returns the text it completes (possibly empty).
    pub fn push(&mut self, tok: &GgufTokenizer, id: u32) -> Result<String, LocalError> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix..self.read])?;
        let after = tok.decode(&self.ids[self.prefix..])?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            let text = after.get(before.len()..).unwrap_or_default().to_owned();
            self.prefix = self.read;
            self.read = self.ids.len();
            Ok(text)
        } else {
            Ok(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::gguf_file::VersionedMagic;

    use super::*;

    /// A tiny SentencePiece vocabulary: Gemma's turn tokens, the characters of "Hello world"
    /// and the pieces that merge them (by score) into `Hello` and `▁world`.
    fn vocab(add_space_prefix: bool, eot: Option<u32>) -> Content {
        let pieces = [
            ("<unk>", 0.0, 2),
            ("<bos>", 0.0, CONTROL),
            ("<eos>", 0.0, CONTROL),
            ("<end_of_turn>", 0.0, CONTROL),
            ("<start_of_turn>", 0.0, CONTROL),
        ]
        .into_iter()
        .chain(["\u{2581}", "H", "e", "l", "o", "w", "r", "d"].map(|c| (c, -10.0, 1)))
        .chain([
            ("Hello", -1.0, 1),
            ("llo", -2.0, 1),
            ("He", -3.0, 1),
            ("ll", -4.0, 1),
            ("\u{2581}world", -1.5, 1),
            ("orld", -2.5, 1),
            ("\u{2581}w", -3.5, 1),
            ("or", -4.5, 1),
            ("ld", -5.5, 1),
        ]);
        let (mut tokens, mut scores, mut types) = (Vec::new(), Vec::new(), Vec::new());
        for (t, s, ty) in pieces {
            tokens.push(Value::String(t.to_owned()));
            scores.push(Value::F32(s));
            types.push(Value::I32(ty));
        }
        let mut metadata: HashMap<String, Value> = [
            ("model", Value::String("llama".into())),
            ("tokens", Value::Array(tokens)),
            ("scores", Value::Array(scores)),
            ("token_type", Value::Array(types)),
            ("bos_token_id", Value::U32(1)),
            ("eos_token_id", Value::U32(2)),
            ("unknown_token_id", Value::U32(0)),
            ("add_space_prefix", Value::Bool(add_space_prefix)),
        ]
        .into_iter()
        .map(|(k, v)| (format!("tokenizer.ggml.{k}"), v))
        .collect();
        if let Some(eot) = eot {
            metadata.insert("tokenizer.ggml.eot_token_id".into(), Value::U32(eot));
        }
        Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    /// `tokenizer.ggml.add_space_prefix = false` (Gemma): no `▁` before the text, and none
    /// stripped from the decoded text; with `true` (the default, Llama 2), both.
    #[test]
    fn sentencepiece_honours_add_space_prefix() {
        let tok = |prefix| GgufTokenizer::from_gguf(&vocab(prefix, None)).unwrap();
        let (gemma, llama) = (tok(false), tok(true));
        // `Hello` is 13, `▁world` 17, `▁` 5.
        assert_eq!(gemma.encode("Hello world").unwrap(), vec![13, 17]);
        assert_eq!(llama.encode("Hello world").unwrap(), vec![5, 13, 17]);
        for t in [&gemma, &llama] {
            let ids = t.encode("Hello world").unwrap();
            assert_eq!(t.decode(&ids).unwrap(), "Hello world");
        }
        // A leading space is the text's own with no prefix.
        assert_eq!(gemma.encode(" world").unwrap(), vec![17]);
        assert_eq!(gemma.decode(&[17]).unwrap(), " world");
        assert_eq!(
            gemma.encode("<start_of_turn>Hello<end_of_turn>").unwrap(),
            vec![4, 13, 3]
        );
    }

    /// Gemma's `<end_of_turn>` ends an answer, found by name or by `eot_token_id`.
    #[test]
    fn gemma_end_of_turn_is_an_end_token() {
        let by_name = GgufTokenizer::from_gguf(&vocab(false, None)).unwrap();
        assert_eq!(by_name.eos, vec![2, 3]);
        let mut ct = vocab(false, Some(4));
        let keyed = GgufTokenizer::from_gguf(&ct).unwrap();
        assert_eq!(keyed.eos, vec![2, 4, 3]);
        // An id past the vocabulary is ignored.
        ct.metadata
            .insert("tokenizer.ggml.eot_token_id".into(), Value::U32(999));
        assert_eq!(GgufTokenizer::from_gguf(&ct).unwrap().eos, vec![2, 3]);
    }
}
