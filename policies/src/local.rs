//! `kind = "local"` backends: a GGUF chat model served in the gateway's own process.

use std::path::PathBuf;

use crate::error::{join, Errors};
use crate::model::{
    BackendConfig, BackendKind, ContextOverflow, LocalConfig, LocalDefaults, LocalWeights, Timeouts,
};
use crate::raw::{RawLocal, RawLocalDefaults};
use crate::values;

fn count(
    errors: &mut Errors,
    path: &str,
    value: Option<i64>,
    default: usize,
    range: std::ops::RangeInclusive<i64>,
) -> usize {
    match value {
        None => default,
        Some(v) if range.contains(&v) => v as usize,
        Some(v) => {
            errors.push(
                path,
                format!(
                    "must be between {} and {} (got {v})",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

/// A number in `range`, else an error at `path`.
fn number(
    errors: &mut Errors,
    path: &str,
    value: Option<f64>,
    range: std::ops::RangeInclusive<f64>,
) -> Option<f32> {
    let v = value?;
    if range.contains(&v) {
        return Some(v as f32);
    }
    errors.push(
        path,
        format!(
            "must be between {} and {} (got {v})",
            range.start(),
            range.end()
        ),
    );
    None
}

/// Phase 2 of `backends.<name>.defaults` (`path`): the same ranges a request is held to.
fn defaults(errors: &mut Errors, path: &str, raw: &RawLocalDefaults) -> LocalDefaults {
    let at = |key: &str| join(path, key);
    let top_p = number(errors, &at("top_p"), raw.top_p, 0.0..=1.0);
    if top_p == Some(0.0) {
        errors.push(at("top_p"), "must be greater than 0");
    }
    LocalDefaults {
        max_tokens: raw
            .max_tokens
            .map(|_| count(errors, &at("max_tokens"), raw.max_tokens, 1, 1..=1_000_000) as u32),
        temperature: number(errors, &at("temperature"), raw.temperature, 0.0..=2.0),
        top_p,
        top_k: raw
            .top_k
            .map(|_| count(errors, &at("top_k"), raw.top_k, 0, 0..=1_000_000) as u32),
        repetition_penalty: number(
            errors,
            &at("repetition_penalty"),
            raw.repetition_penalty,
            0.01..=10.0,
        ),
    }
}

/// Phase 2 of a `kind = "local"` backend at `path` (`backends.<name>`).
pub(crate) fn backend(
    name: &str,
    path: &str,
    raw: &RawLocal,
    errors: &mut Errors,
) -> BackendConfig {
    let at = |key: &str| join(path, key);
    let gguf = match raw.gguf.as_deref().map(str::trim) {
        None => {
            errors.push(
                at("gguf"),
                "missing required key (the path of a .gguf file)",
            );
            String::new()
        }
        Some("") => {
            errors.push(at("gguf"), "must not be empty");
            String::new()
        }
        Some(p) => p.to_owned(),
    };
    let gguf = PathBuf::from(gguf);
    let model = match raw.model.as_deref() {
        Some(m) if m.trim().is_empty() => {
            errors.push(at("model"), "must not be empty");
            String::new()
        }
        Some(m) => m.to_owned(),
        None => gguf
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".to_owned()),
    };
    let cost_per_hour = raw
        .cost_per_hour
        .as_ref()
        .and_then(|c| errors.check(&at("cost_per_hour"), values::price(&c.0)))
        .unwrap_or_default();
    let context = raw.context.and_then(|c| {
        if (16..=i64::from(u32::MAX)).contains(&c) {
            Some(c as u32)
        } else {
            errors.push(
                at("context"),
                format!("must be at least 16 tokens (got {c})"),
            );
            None
        }
    });
    let on_context_overflow = match raw.on_context_overflow.as_deref() {
        None | Some("reject") => ContextOverflow::Reject,
        Some("fallback") => ContextOverflow::Fallback,
        Some(other) => {
            errors.push(
                at("on_context_overflow"),
                format!("must be \"reject\" or \"fallback\" (got {other:?})"),
            );
            ContextOverflow::Reject
        }
    };
    let weights = match raw.weights.as_deref() {
        None | Some("q8_0") => LocalWeights::Q8_0,
        Some("as-stored") => LocalWeights::AsStored,
        Some(other) => {
            errors.push(
                at("weights"),
                format!("must be \"q8_0\" or \"as-stored\" (got {other:?})"),
            );
            LocalWeights::Q8_0
        }
    };
    let config = LocalConfig {
        gguf,
        model,
        cost_per_hour,
        threads: count(
            errors,
            &at("threads"),
            raw.threads,
            LocalConfig::DEFAULT_THREADS,
            1..=256,
        ),
        max_batch: count(
            errors,
            &at("max_batch"),
            raw.max_batch,
            LocalConfig::DEFAULT_MAX_BATCH,
            1..=256,
        ),
        queue: count(
            errors,
            &at("queue"),
            raw.queue,
            LocalConfig::DEFAULT_QUEUE,
            0..=1_000_000,
        ),
        max_wait: raw.max_wait_ms.map(|_| {
            let ms = count(
                errors,
                &at("max_wait_ms"),
                raw.max_wait_ms,
                1,
                1..=3_600_000,
            );
            std::time::Duration::from_millis(ms as u64)
        }),
        context,
        on_context_overflow,
        system_prompt: raw.system_prompt.clone(),
        weights,
        defaults: raw
            .defaults
            .as_ref()
            .map(|d| defaults(errors, &at("defaults"), d))
            .unwrap_or_default(),
    };
    BackendConfig {
        name: name.to_owned(),
        kind: BackendKind::Local(Box::new(config)),
        timeouts: Timeouts::default(),
    }
}
