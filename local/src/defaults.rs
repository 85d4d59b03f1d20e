//! What a local backend generates with when the request does not say: the policy's
//! `defaults`, else the sampling the GGUF recommends (`general.sampling.*`), else built-in
//! values (llama.cpp's), and a built-in cap on the output length.

use candle_core::quantized::gguf_file;

use crate::engine::SamplingParams;

/// Output tokens generated for a request that sets no `max_tokens` and whose backend sets
/// no `defaults.max_tokens`. A client may still ask for more, up to the context.
pub const BUILT_IN_MAX_TOKENS: u32 = 512;

/// Generation defaults; `None` fields fall through to the next source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
}

impl Defaults {
    /// The sampling the GGUF file recommends (`general.sampling.temp`, `.top_p`, `.top_k`,
    /// `.penalty_repeat`), where it declares any.
    pub fn from_gguf(ct: &gguf_file::Content) -> Self {
        let f = |key: &str| {
            ct.metadata.get(key).and_then(|v| {
                v.to_f32()
                    .ok()
                    .or_else(|| v.to_f64().ok().map(|x| x as f32))
            })
        };
        let k = ct.metadata.get("general.sampling.top_k").and_then(|v| {
            v.to_i32()
                .ok()
                .or_else(|| v.to_u32().ok().map(|x| x as i32))
        });
        Defaults {
            max_tokens: None,
            temperature: f("general.sampling.temp"),
            top_p: f("general.sampling.top_p"),
            top_k: k.and_then(|k| usize::try_from(k).ok()),
            repetition_penalty: f("general.sampling.penalty_repeat"),
        }
    }

    /// `self` where set, else `other`.
    pub fn or(self, other: Defaults) -> Defaults {
        Defaults {
            max_tokens: self.max_tokens.or(other.max_tokens),
            temperature: self.temperature.or(other.temperature),
            top_p: self.top_p.or(other.top_p),
            top_k: self.top_k.or(other.top_k),
            repetition_penalty: self.repetition_penalty.or(other.repetition_penalty),
        }
    }

    /// The sampling settings with every unset field built in: temperature 0.8, top_p 0.95,
    /// top_k 40 (llama.cpp's defaults), no penalties.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(0.8),
            top_p: self.top_p.unwrap_or(0.95),
            top_k: self.top_k.unwrap_or(40),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            ..SamplingParams::default()
        }
    }

    /// The output cap for a request that sets none.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(BUILT_IN_MAX_TOKENS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_wins_then_the_file_then_the_built_in_values() {
        let policy = Defaults {
            temperature: Some(0.2),
            max_tokens: Some(64),
            ..Defaults::default()
        };
        let file = Defaults {
            temperature: Some(0.6),
            top_p: Some(0.9),
            ..Defaults::default()
        };
        let d = policy.or(file);
        let s = d.sampling();
        assert_eq!(s.temperature, 0.2);
        assert_eq!(s.top_p, 0.9);
        assert_eq!(s.top_k, 40);
        assert_eq!(s.repetition_penalty, 1.0);
        assert_eq!(d.max_tokens(), 64);
        assert_eq!(Defaults::default().max_tokens(), BUILT_IN_MAX_TOKENS);
        assert_eq!(Defaults::default().sampling().temperature, 0.8);
    }
}
