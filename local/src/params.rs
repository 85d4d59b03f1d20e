//! Checking a request's sampling fields and resolving them against the backend's defaults.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use sluicegate_wire::{BackendError, ChatRequest};

use crate::engine::SamplingParams;

pub fn invalid(param: &str, message: impl Into<String>) -> BackendError {
    BackendError::InvalidRequest {
        message: message.into(),
        param: Some(param.to_owned()),
    }
}

fn extra_f64(request: &ChatRequest, key: &str) -> Result<Option<f64>, BackendError> {
    match request.extra.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(key, format!("{key} must be a number"))),
    }
}

fn in_range(param: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f32>, BackendError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(invalid(
            param,
            format!("{param} must be between {lo} and {hi}, got {x}"),
        )),
        other => Ok(other.map(|x| x as f32)),
    }
}

/// The request's sampling settings, output cap and stop strings, validated.
pub fn settings(
    request: &ChatRequest,
    d: &SamplingParams,
    counter: &AtomicU64,
) -> Result<(SamplingParams, Option<u32>, Vec<String>), BackendError> {
    if request.n.unwrap_or(1) != 1 {
        return Err(invalid(
            "n",
            "the local model generates one choice only (n = 1)",
        ));
    }
    let temperature = in_range("temperature", request.temperature, 0.0, 2.0)?;
    let top_p = in_range("top_p", request.top_p, 0.0, 1.0)?;
    if top_p == Some(0.0) {
        return Err(invalid("top_p", "top_p must be greater than 0"));
    }
    let top_k = match request.extra.get("top_k") {
        None | Some(Value::Null) => d.top_k,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("top_k", "top_k must be a non-negative integer"))?
            as usize,
    };
    let rep = extra_f64(request, "repetition_penalty")?;
    let rep = in_range("repetition_penalty", rep, 0.01, 10.0)?;
    let freq = in_range(
        "frequency_penalty",
        extra_f64(request, "frequency_penalty")?,
        -2.0,
        2.0,
    )?;
    let pres = in_range(
        "presence_penalty",
        extra_f64(request, "presence_penalty")?,
        -2.0,
        2.0,
    )?;
    let seed = match request.seed {
        Some(s) => s as u64,
        None => {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
                ^ n.rotate_left(32)
        }
    };
    let sampling = SamplingParams {
        temperature: temperature.unwrap_or(d.temperature),
        top_p: top_p.unwrap_or(d.top_p),
        top_k,
        repetition_penalty: rep.unwrap_or(d.repetition_penalty),
        frequency_penalty: freq.unwrap_or(d.frequency_penalty),
        presence_penalty: pres.unwrap_or(d.presence_penalty),
        seed,
    };
    if request.max_output_tokens() == Some(0) {
        return Err(invalid("max_tokens", "max_tokens must be at least 1"));
    }
    let stop = request
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .unwrap_or_default();
    Ok((sampling, request.max_output_tokens(), stop))
}
