//! Phase 1: the policy exactly as written. Unknown keys and wrong types are
//! rejected here; everything that needs a cross-reference, a default or a
//! value check (durations, sizes, prices, names) is left for phase 2 so that
//! all such problems can be reported together.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::{from_serde, PolicyError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub server: Option<RawServer>,
    #[serde(default)]
    pub backends: BTreeMap<String, RawBackend>,
    #[serde(default)]
    pub routes: BTreeMap<String, RawRoute>,
    pub policy: Option<RawRouting>,
    pub ledger: Option<RawLedger>,
    pub classifier: Option<RawClassifier>,
    pub telemetry: Option<RawTelemetry>,
    #[serde(default)]
    pub classes: BTreeMap<String, RawClass>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub reference_route: Option<String>,
    pub store_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub body_limit: Option<RawSize>,
    pub request_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub admin_key_env: Option<String>,
}

/// `kind` selects the variant; each variant has its own closed set of keys,
/// so an Anthropic-only key on an OpenAI backend is an unknown field.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind")]
pub enum RawBackend {
    #[serde(rename = "openai")]
    OpenAi(RawOpenAi),
    #[serde(rename = "anthropic")]
    Anthropic(RawAnthropic),
    #[serde(rename = "local")]
    Local(RawLocal),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenAi {
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub total_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnthropic {
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    pub anthropic_version: Option<String>,
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub total_timeout: Option<String>,
}

/// The keys of a `kind = "local"` backend, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    pub gguf: Option<String>,
    pub model: Option<String>,
    pub cost_per_hour: Option<RawDecimal>,
    pub threads: Option<i64>,
    pub max_batch: Option<i64>,
    pub queue: Option<i64>,
    pub max_wait_ms: Option<i64>,
    pub context: Option<i64>,
    pub on_context_overflow: Option<String>,
    pub system_prompt: Option<String>,
    pub weights: Option<String>,
    pub defaults: Option<RawLocalDefaults>,
}

/// `defaults = { ... }` of a local backend, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalDefaults {
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub repetition_penalty: Option<f64>,
}

/// The keys every backend kind shares, borrowed from either variant.
#[derive(Debug, Clone, Copy)]
pub struct RawCommon<'a> {
    pub base_url: Option<&'a str>,
    pub api_key_env: Option<&'a str>,
    pub model: Option<&'a str>,
    pub connect_timeout: Option<&'a str>,
    pub first_byte_timeout: Option<&'a str>,
    pub total_timeout: Option<&'a str>,
}

impl RawBackend {
    pub fn common(&self) -> RawCommon<'_> {
        match self {
            Self::OpenAi(b) => RawCommon {
                base_url: b.base_url.as_deref(),
                api_key_env: b.api_key_env.as_deref(),
                model: b.model.as_deref(),
                connect_timeout: b.connect_timeout.as_deref(),
                first_byte_timeout: b.first_byte_timeout.as_deref(),
                total_timeout: b.total_timeout.as_deref(),
            },
            Self::Anthropic(b) => RawCommon {
                base_url: b.base_url.as_deref(),
                api_key_env: b.api_key_env.as_deref(),
                model: b.model.as_deref(),
                connect_timeout: b.connect_timeout.as_deref(),
                first_byte_timeout: b.first_byte_timeout.as_deref(),
                total_timeout: b.total_timeout.as_deref(),
            },
            Self::Local(b) => RawCommon {
                base_url: None,
                api_key_env: None,
                model: b.model.as_deref(),
                connect_timeout: None,
                first_byte_timeout: None,
                total_timeout: None,
            },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub backend: Option<String>,
    pub price: Option<RawPrice>,
    pub fallback: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: Option<RawDecimal>,
    pub output: Option<RawDecimal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub default: Option<String>,
    pub route_header: Option<RawRouteHeader>,
    pub honor_model: Option<bool>,
    pub rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub route: Option<String>,
    pub when: Option<RawWhen>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub model: Option<RawModels>,
    pub header: Option<RawHeaderMatch>,
    pub min_prompt_tokens: Option<i64>,
    pub max_prompt_tokens: Option<i64>,
    pub has_tools: Option<bool>,
    /// The classifier's class is this one (or one of these).
    pub class: Option<RawModels>,
    pub min_confidence: Option<f64>,
    pub max_confidence: Option<f64>,
    /// The classifier found the request out of scope (or in scope, with `false`).
    pub unknown: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    pub name: Option<String>,
    pub equals: Option<String>,
}

/// `[classifier]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClassifier {
    pub encoder: Option<String>,
    pub head: Option<String>,
    pub on_classifier_error: Option<String>,
    pub input: Option<String>,
    #[serde(rename = "match")]
    pub matching: Option<String>,
    pub k: Option<i64>,
    pub timeout: Option<String>,
    pub min_similarity: Option<f64>,
}

/// One `[classes.NAME]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    pub examples: Option<Vec<String>>,
    pub description: Option<String>,
}

/// `[telemetry]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub capture_content: Option<bool>,
    pub export_interval: Option<String>,
}

/// A size: an integer number of bytes or a string such as `"4MiB"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer number of bytes or a size string such as \"4MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A decimal amount, kept as text. TOML numbers are turned into their
/// shortest decimal spelling, so the float `0.15` becomes exactly `"0.15"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDecimal(pub String);

impl<'de> Deserialize<'de> for RawDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDecimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or a string such as \"0.15\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDecimal, E> {
                // Display prints the shortest string that round-trips, never
                // an exponent: 0.15 -> "0.15", 1e-7 -> "0.0000001".
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `route_header`: a header name, or `false` to disable the override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRouteHeader {
    Name(String),
    Flag(bool),
}

impl<'de> Deserialize<'de> for RawRouteHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawRouteHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name or `false`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawRouteHeader, E> {
                Ok(RawRouteHeader::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRouteHeader, E> {
                Ok(RawRouteHeader::Name(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `when.model`: one model name or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawModels(pub Vec<String>);

impl<'de> Deserialize<'de> for RawModels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawModels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model name or a list of model names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawModels, E> {
                Ok(RawModels(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawModels, A::Error> {
                let mut models = Vec::new();
                while let Some(model) = seq.next_element::<String>()? {
                    models.push(model);
                }
                Ok(RawModels(models))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Phase 1: syntax, unknown keys and types. Fails on the first problem,
/// located by its key path.
pub fn from_str(src: &str) -> Result<RawPolicy, PolicyError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(src)).map_err(|e| from_serde(src, e))
}
