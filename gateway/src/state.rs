//! What every request shares: the policy, the decision engine and one backend per route.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluicegate_adapters::anthropic::AnthropicBackend;
use sluicegate_adapters::openai::OpenAiBackend;
use sluicegate_local::{LocalBackend, LocalOptions};
use sluicegate_policies::{BackendConfig, BackendKind, Policy, RouteConfig};
use sluicegate_router::Engine;
use sluicegate_wire::{BackendError, ChatBackend};

use crate::metrics::Metrics;

/// A route ready to serve: its configuration and its backend.
#[derive(Debug, Clone)]
pub struct Route {
    pub config: RouteConfig,
    pub backend_name: String,
    pub backend: Arc<dyn ChatBackend>,
}

/// Shared by all requests; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub policy: Arc<Policy>,
    pub engine: Arc<Engine>,
    pub routes: Arc<BTreeMap<String, Route>>,
    pub metrics: Metrics,
    /// The on-box classifier (its encoder thread), when the policy configures one.
    pub classifier: Option<Arc<dyn sluicegate_router::classifier::Classifier>>,
    /// The OpenTelemetry span exporter, when the policy names an endpoint (set by `serve`).
    pub telemetry: Option<crate::telemetry::Telemetry>,
}

impl AppState {
    /// Builds every backend named by the policy. A backend that cannot serve (say, its key
    /// variable is unset) is still built; it reports itself unavailable and its routes fall back.
    pub fn new(policy: Policy) -> Result<Self, BackendError> {
        let mut backends: BTreeMap<String, Arc<dyn ChatBackend>> = BTreeMap::new();
        for (name, config) in &policy.backends {
            backends.insert(name.clone(), build_backend(config)?);
        }
        let mut routes = BTreeMap::new();
        for (name, config) in &policy.routes {
            let backend = backends.get(&config.backend).cloned().ok_or_else(|| {
                BackendError::Unavailable(format!("route {name}: no backend {}", config.backend))
            })?;
            routes.insert(
                name.clone(),
                Route {
                    config: config.clone(),
                    backend_name: config.backend.clone(),
                    backend,
                },
            );
        }
        // Starts the encoder thread; until it is ready calls use `on_classifier_error`.
        let classifier = policy.classifier.as_ref().map(|c| {
            Arc::new(sluicegate_router::classifier::setup::start(c))
                as Arc<dyn sluicegate_router::classifier::Classifier>
        });
        Ok(AppState {
            engine: Arc::new(Engine::new(&policy)),
            policy: Arc::new(policy),
            routes: Arc::new(routes),
            metrics: Metrics::new(),
            classifier,
            telemetry: None,
        })
    }

    /// Whether requests' messages and replies are kept (ledger or telemetry opted in).
    pub fn captures_content(&self) -> bool {
        self.policy.ledger.store_content || self.policy.telemetry.capture_content
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    /// Names of the backends still loading (in-process models warming up).
    pub fn backends_loading(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .routes
            .values()
            .filter(|r| r.backend.is_loading())
            .map(|r| r.backend_name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Each backend with why it cannot serve, if it cannot.
    pub fn backend_health(&self) -> BTreeMap<String, Option<String>> {
        self.routes
            .values()
            .map(|r| {
                let why = r.backend.check_available().err().map(|e| e.to_string());
                (r.backend_name.clone(), why)
            })
            .collect()
    }
}

fn build_backend(config: &BackendConfig) -> Result<Arc<dyn ChatBackend>, BackendError> {
    let t = config.timeouts;
    Ok(match &config.kind {
        BackendKind::OpenAi {
            base_url,
            api_key_env,
            model,
        } => Arc::new(OpenAiBackend::new(
            base_url,
            model,
            api_key_env.as_deref(),
            t,
        )?),
        BackendKind::Anthropic {
            base_url,
            api_key_env,
            model,
            max_tokens,
            version,
        } => Arc::new(AnthropicBackend::new(
            base_url,
            model,
            api_key_env.as_deref(),
            *max_tokens,
            version,
            t,
        )?),
        // Loads in the background; a missing or unusable file fails start-up here.
        BackendKind::Local(local) => Arc::new(
            LocalBackend::new(LocalOptions::from_policy(local))
                .map_err(|e| BackendError::Unavailable(format!("backend {}: {e}", config.name)))?,
        ),
    })
}
