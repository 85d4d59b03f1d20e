//! The bytes each token of a vocabulary stands for ([`pieces`]), as constrained decoding
//! ([`crate::grammar`]) needs them: byte-level BPE tokens through GPT-2's byte-to-character
//! table reversed, SentencePiece tokens with `▁` as a space and `<0xNN>` as byte `NN`,
//! user-defined tokens as their own text. Control, unknown and unused tokens stand for no
//! text a grammar could match (`None`).

use std::sync::{Arc, OnceLock};

/// The bytes of every token of a vocabulary; cheap to clone.
#[derive(Clone)]
pub struct Pieces(Arc<[Option<Box<[u8]>>]>, Arc<OnceLock<Vec<u32>>>);

impl std::fmt::Debug for Pieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pieces({} tokens)", self.0.len())
    }
}

impl Pieces {
    /// The bytes of token `id`; `None` for a control token or an id out of range.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        self.0.get(id as usize)?.as_deref()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some token stands for exactly `bytes` (a binary search over the ids sorted
    /// by their bytes, sorted on first use).
    pub fn contains(&self, bytes: &[u8]) -> bool {
        let sorted = self.1.get_or_init(|| {
            let mut ids: Vec<u32> = (0..self.0.len() as u32)
                .filter(|i| self.get(*i).is_some())
                .collect();
            ids.sort_unstable_by(|a, b| self.get(*a).cmp(&self.get(*b)));
            ids
        });
        sorted
            .binary_search_by(|i| self.get(*i).unwrap_or_default().cmp(bytes))
            .is_ok()
    }
}

impl From<Vec<Option<Box<[u8]>>>> for Pieces {
    fn from(v: Vec<Option<Box<[u8]>>>) -> Self {
        Pieces(v.into(), Arc::default())
    }
}

/// `tokenizer.ggml.token_type` values.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// The bytes of each token of `tokens` in vocabulary `model` (`"gpt2"` or `"llama"`).
pub fn pieces(model: &str, tokens: &[String], types: &[i32]) -> Pieces {
    let table = (model == "gpt2").then(char_to_byte);
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = types.get(i).copied().unwrap_or(NORMAL);
            match kind {
                CONTROL | UNKNOWN | UNUSED => None,
                USER_DEFINED => Some(t.as_bytes().into()),
                BYTE => byte_token(t).map(|b| Box::from([b])),
                _ => match &table {
                    Some(table) => byte_level(t, table),
                    None => Some(t.replace('\u{2581}', " ").into_bytes().into()),
                },
            }
        })
        .collect::<Vec<_>>()
        .into()
}

/// `<0xNN>` as byte `NN`.
fn byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// A byte-level token's bytes; a character outside the table is its own UTF-8.
fn byte_level(t: &str, table: &std::collections::HashMap<char, u8>) -> Option<Box<[u8]>> {
    let mut out = Vec::with_capacity(t.len());
    for c in t.chars() {
        match table.get(&c) {
            Some(b) => out.push(*b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Some(out.into())
}

/// GPT-2's `bytes_to_unicode`, reversed: printable bytes are their own character, the others
/// (0-32, 127-160, 173) are 256, 257, ... in order.
fn char_to_byte() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let c = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\0')
        };
        map.insert(c, b);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_tokens_map_back_to_their_bytes() {
        let t = |s: &str| s.to_owned();
        let tokens = [
            t("Ġhello"),
            t("Ċ"),
            t("<|im_end|>"),
            t("<tool_call>"),
            t("Ã©"),
        ];
        let got = pieces("gpt2", &tokens, &[1, 1, 3, 4, 1]);
        assert_eq!(got.get(0), Some(&b" hello"[..]));
        assert_eq!(got.get(1), Some(&b"\n"[..]));
        assert_eq!(got.get(2), None);
        assert_eq!(got.get(3), Some(&b"<tool_call>"[..]));
        assert_eq!(got.get(4), Some("é".as_bytes()));
        assert_eq!(got.get(5), None);
        assert!(got.contains(b" hello") && got.contains(b"<tool_call>"));
        assert!(!got.contains(b"hello") && !got.contains(b"<|im_end|>"));
    }

    #[test]
    fn sentencepiece_tokens_map_back_to_their_bytes() {
        let t = |s: &str| s.to_owned();
        let tokens = [
            t("\u{2581}the"),
            t("<0x0A>"),
            t("<s>"),
            t("<unk>"),
            t("ing"),
        ];
        let got = pieces("llama", &tokens, &[1, 6, 3, 2, 1]);
        assert_eq!(got.get(0), Some(&b" the"[..]));
        assert_eq!(got.get(1), Some(&b"\n"[..]));
        assert_eq!((got.get(2), got.get(3)), (None, None));
        assert_eq!(got.get(4), Some(&b"ing"[..]));
    }
}
