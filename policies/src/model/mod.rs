//! The validated policy: every default resolved, every cross-reference checked.
//!
//! Plain data: this module imports nothing from the rest of the crate. The `[policy]`
//! rules and the `[classifier]` whose signals they use are in `routing.rs`.

mod routing;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rust_decimal::Decimal;

pub use routing::{
    ClassConfig, ClassifierConfig, ClassifierInput, Conditions, ExampleMatch, HeaderMatch,
    RoutingPolicy, Rule,
};

/// A fully validated routing policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub server: ServerConfig,
    /// Upstream backends by name.
    pub backends: BTreeMap<String, BackendConfig>,
    /// Routes by name. Every route's backend and fallbacks exist.
    pub routes: BTreeMap<String, RouteConfig>,
    pub routing: RoutingPolicy,
    pub ledger: LedgerConfig,
    /// The on-box classifier, when configured.
    pub classifier: Option<ClassifierConfig>,
    /// OpenTelemetry export (off without an endpoint).
    pub telemetry: TelemetryConfig,
}

/// `[ledger]`: where request rows go and what savings are measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Off only for benchmarks: then no row is written.
    pub enabled: bool,
    /// A SQLite file path (relative to the working directory), `sqlite://PATH`, or a
    /// `postgres://` URL. Default `sluicegate-ledger.sqlite`.
    pub url: String,
    /// The large remote route whose prices give each request's counterfactual cost.
    pub reference_route: Option<String>,
    /// Store each request's messages and reply in the row (`prompt`, `reply`). Off by
    /// default: prompts often hold personal data.
    pub store_content: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            enabled: true,
            url: "sluicegate-ledger.sqlite".to_owned(),
            reference_route: None,
            store_content: false,
        }
    }
}

impl Policy {
    /// Every route name, sorted.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The backend that serves `route`, if the route exists.
    pub fn backend_for(&self, route: &str) -> Option<&BackendConfig> {
        self.routes
            .get(route)
            .and_then(|r| self.backends.get(&r.backend))
    }
}

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Maximum request body size in bytes. Default 4 MiB.
    pub body_limit: usize,
    /// Whole-request deadline. Default 600s.
    pub request_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal. Default 30s.
    pub shutdown_grace: Duration,
    /// Name of the environment variable holding the admin key. When set, `/dashboard` and
    /// `/api/usage` require `Authorization: Bearer <key>`. Default: none (open).
    pub admin_key_env: Option<String>,
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            admin_key_env: None,
        }
    }
}

/// One `[backends.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub name: String,
    pub kind: BackendKind,
    pub timeouts: Timeouts,
}

/// Per-backend upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect. Default 5s.
    pub connect: Duration,
    /// Until the first response byte. Default 60s.
    pub first_byte: Duration,
    /// Whole upstream exchange, including streaming. Default 600s.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// The provider protocol a backend speaks, with its provider-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// OpenAI's Chat Completions API or any compatible server
    /// (vLLM, llama.cpp server, Ollama, ...).
    OpenAi {
        /// No trailing slash. Default `https://api.openai.com/v1`.
        base_url: String,
        /// Name of the environment variable holding the API key, if any.
        api_key_env: Option<String>,
        model: String,
    },
    /// Anthropic's Messages API.
    Anthropic {
        /// No trailing slash. Default `https://api.anthropic.com`.
        base_url: String,
        api_key_env: Option<String>,
        model: String,
        /// Sent when the client gives no `max_tokens`. Default 4096.
        max_tokens: u32,
        /// The `anthropic-version` header. Default `2023-06-01`.
        version: String,
    },
    /// A GGUF chat model served in this process.
    Local(Box<LocalConfig>),
}

impl BackendKind {
    pub const OPENAI_DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";
    pub const ANTHROPIC_DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 4096;
    pub const ANTHROPIC_DEFAULT_VERSION: &'static str = "2023-06-01";

    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        match self {
            Self::OpenAi { model, .. } | Self::Anthropic { model, .. } => model,
            Self::Local(local) => &local.model,
        }
    }

    /// The environment variable holding the API key, if the backend uses one.
    pub fn api_key_env(&self) -> Option<&str> {
        match self {
            Self::OpenAi { api_key_env, .. } | Self::Anthropic { api_key_env, .. } => {
                api_key_env.as_deref()
            }
            Self::Local(_) => None,
        }
    }

    /// The upstream base URL, without a trailing slash; empty for a local model.
    pub fn base_url(&self) -> &str {
        match self {
            Self::OpenAi { base_url, .. } | Self::Anthropic { base_url, .. } => base_url,
            Self::Local(_) => "",
        }
    }

    /// The `kind` value as written in TOML: `"openai"`, `"anthropic"` or `"local"`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::OpenAi { .. } => "openai",
            Self::Anthropic { .. } => "anthropic",
            Self::Local(_) => "local",
        }
    }
}

/// What a local backend does with a prompt longer than its context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContextOverflow {
    /// Answer 400 `context_length_exceeded` (`"reject"`, the default).
    #[default]
    Reject,
    /// Fail over to the route's fallback (`"fallback"`).
    Fallback,
}

/// How a local model's weights are held in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocalWeights {
    /// Formats without a fast kernel here (Q4_0, Q5_0, Q5_1) re-quantised to Q8_0 at load;
    /// Q4_1 and Q8_0 are kept as stored (`"q8_0"`, the default).
    #[default]
    Q8_0,
    /// As stored in the file (`"as-stored"`).
    AsStored,
}

/// The settings of a local backend, defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The GGUF file; a relative path is relative to the working directory.
    pub gguf: PathBuf,
    /// The model name reported in responses. Default: the file name without `.gguf`.
    pub model: String,
    /// What the box costs per hour in USD, for pricing local requests. Default 0.
    pub cost_per_hour: Decimal,
    /// Threads for the model's matmuls. Default 2.
    pub threads: usize,
    /// Sequences decoded together. Default 8.
    pub max_batch: usize,
    /// Requests that may wait for a slot; more are refused with 429. Default 32.
    pub queue: usize,
    /// A request whose estimated wait for a slot is longer is refused at once with 429 and
    /// `retry-after` (the gateway then tries the route's fallback). Default: no limit but
    /// `queue`.
    pub max_wait: Option<std::time::Duration>,
    /// Context window in tokens; the model's own when not given (and never more).
    pub context: Option<u32>,
    pub on_context_overflow: ContextOverflow,
    /// Used as the system message of conversations that have none. Default: none, so such
    /// conversations get no system turn (not even a default the chat template would insert).
    pub system_prompt: Option<String>,
    pub weights: LocalWeights,
    /// What to generate with where a request does not say; unset fields fall back to the
    /// GGUF's recommended sampling, then to built-in values (and a built-in output cap).
    pub defaults: LocalDefaults,
}

/// `defaults = { max_tokens, temperature, top_p, top_k, repetition_penalty }` of a local
/// backend; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalDefaults {
    /// Output tokens for a request that sets no `max_tokens` (a client may ask for more).
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub repetition_penalty: Option<f32>,
}

// Phase 2 admits only numbers inside closed ranges, never NaN, so equality is total.
impl Eq for LocalDefaults {}

impl LocalConfig {
    pub const DEFAULT_THREADS: usize = 2;
    pub const DEFAULT_MAX_BATCH: usize = 8;
    pub const DEFAULT_QUEUE: usize = 32;
}

/// One `[routes.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub name: String,
    /// An existing backend name.
    pub backend: String,
    pub price: Price,
    /// Where `price` came from.
    pub price_source: PriceSource,
    /// Routes tried in order when this route's backend fails. Not transitive.
    pub fallback: Vec<String>,
    pub description: Option<String>,
}

/// Where a route's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PriceSource {
    /// The route's own `price` table.
    Policy,
    /// The bundled table ([`crate::prices`]), by the backend's model.
    Bundled,
    /// Neither: the price is zero.
    #[default]
    Unknown,
}

/// USD per one million tokens. Zero when not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input_per_mtok: Decimal,
    pub output_per_mtok: Decimal,
}

/// The `[telemetry]` table: where spans go and what they may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The collector's base URL, e.g. `http://127.0.0.1:4318`; spans are posted to
    /// `<endpoint>/v1/traces`. Plain http only (the exporter has no TLS): a local
    /// OpenTelemetry Collector forwards further. Without it nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported resource. Default `sluicegate`.
    pub service_name: String,
    /// Put the request's messages and the reply in the span (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: prompts often hold personal data.
    pub capture_content: bool,
    /// How often finished spans are sent. Default 5 s.
    pub export_interval: std::time::Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "sluicegate".to_owned(),
            capture_content: false,
            export_interval: std::time::Duration::from_secs(5),
        }
    }
}
