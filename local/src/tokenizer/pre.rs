//! Byte-level BPE pre-tokenizers by `tokenizer.ggml.pre`: the regular expressions each model
//! family's `tokenizer.json` splits with before its merges (as llama.cpp lists them), then
//! GPT-2's byte-to-character mapping.

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::LocalError;

/// GPT-2's split.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's: case-insensitive contractions, numbers in runs of up to three digits.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's (and Qwen2.5's, Qwen3's): Llama 3's with every digit on its own.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Falcon's: punctuation runs first, then GPT-2's, then numbers in threes.
const FALCON_PUNCT: &str = r"[\p{P}\$\+<=>\^~\|`]+";
const FALCON_DIGITS: &str = r"[0-9][0-9][0-9]";

fn split(re: &str) -> Result<PreTokenizerWrapper, LocalError> {
    Split::new(
        SplitPattern::Regex(re.to_owned()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map(Into::into)
    .map_err(|e| LocalError::Model(format!("pre-tokenizer regex: {e}")))
}

/// Whether the family's BPE takes a pre-token found whole in the vocabulary as one token
/// before trying merges (`ignore_merges` in Llama 3's `tokenizer.json`).
pub fn ignores_merges(name: &str) -> bool {
    matches!(name, "llama3" | "llama-v3" | "llama-bpe" | "falcon3")
}

/// The pre-tokenizer for `tokenizer.ggml.pre = name`, ending in the byte-level mapping
/// `byte_level` (which must not split again).
pub fn for_name(name: &str) -> Result<PreTokenizerWrapper, LocalError> {
    let regexes: Vec<&str> = match name {
        "default" | "gpt-2" | "gpt2" | "mpt" | "olmo" => vec![GPT2],
        // Every digit on its own, then GPT-2's.
        "smollm" | "starcoder" | "refact" | "command-r" => vec![r"\p{N}", GPT2],
        "falcon" => vec![FALCON_PUNCT, GPT2, FALCON_DIGITS],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => vec![LLAMA3],
        "qwen2" | "stablelm2" => vec![QWEN2],
        other => {
            return Err(LocalError::Model(format!(
                "tokenizer.ggml.pre {other:?} is not supported (supported: gpt-2, smollm, \
                 starcoder, refact, command-r, falcon, llama-bpe/llama3, qwen2)"
            )))
        }
    };
    let mut parts = regexes
        .into_iter()
        .map(split)
        .collect::<Result<Vec<_>, _>>()?;
    parts.push(ByteLevel::new(false, true, false).into());
    Ok(Sequence::new(parts).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_pre_tokenizer_is_refused_by_name() {
        let err = for_name("jais").unwrap_err().to_string();
        assert!(
            err.contains("\"jais\"") && err.contains("not supported"),
            "{err}"
        );
        assert!(for_name("qwen2").is_ok());
    }
}
