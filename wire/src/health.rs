//! The health of a model that loads on its own thread (the encoder, an in-process LLM).

/// Loading, ready, or failed to load. Published by the model's thread (over a `watch`
/// channel or a shared cell) and read by `/readyz` and the backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Still loading the weights or warming up.
    Loading,
    /// Serving.
    Ready,
    /// Loading failed (the reason), or the model's thread is gone.
    Failed(String),
}

impl Health {
    /// `"loading"`, `"ready"` or `"failed"`.
    pub fn state(&self) -> &'static str {
        match self {
            Health::Loading => "loading",
            Health::Ready => "ready",
            Health::Failed(_) => "failed",
        }
    }
}
