//! The validated policy: every default resolved, every cross-reference checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rust_decimal::Decimal;

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
    pub classifier: Option<crate::classifier::ClassifierConfig>,
    /// OpenTelemetry export (off without an endpoint).
    pub telemetry: crate::telemetry::TelemetryConfig,
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
    Local(Box<crate::local::LocalConfig>),
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

/// The `[policy]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPolicy {
    /// The route used when nothing else decides.
    pub default: String,
    /// Lower-case header name that lets a client pick a route explicitly.
    /// Default `Some("x-sluicegate-route")`; `route_header = false` disables it.
    pub route_header: Option<String>,
    /// Whether a request whose `model` is a route name goes to that route. Default true.
    pub honor_model: bool,
    /// Evaluated in order; the first rule whose conditions all hold wins.
    pub rules: Vec<Rule>,
}

impl RoutingPolicy {
    pub const DEFAULT_ROUTE_HEADER: &'static str = "x-sluicegate-route";
}

/// One `[[policy.rules]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// An existing route name.
    pub route: String,
    pub when: Conditions,
}

/// A rule's conditions. All given conditions must hold; none given means always.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    /// The request's `model` is one of these (never an empty list).
    pub model: Option<Vec<String>>,
    pub header: Option<HeaderMatch>,
    /// Estimated prompt tokens `>=` this.
    pub min_prompt_tokens: Option<u32>,
    /// Estimated prompt tokens `<=` this.
    pub max_prompt_tokens: Option<u32>,
    /// The request does (true) or does not (false) offer tools.
    pub has_tools: Option<bool>,
    /// The classifier's class is one of these (never an empty list).
    pub class: Option<Vec<String>>,
    /// The classifier's confidence `>=` this (in `0..=1`).
    pub min_confidence: Option<f32>,
    /// The classifier's confidence `<` this (in `0..=1`): "unsure" requests.
    pub max_confidence: Option<f32>,
}

impl Conditions {
    /// True when no condition is given, i.e. the rule always matches.
    pub fn is_empty(&self) -> bool {
        self.model.is_none()
            && self.header.is_none()
            && self.min_prompt_tokens.is_none()
            && self.max_prompt_tokens.is_none()
            && self.has_tools.is_none()
            && self.class.is_none()
            && self.min_confidence.is_none()
            && self.max_confidence.is_none()
    }
}

/// A header condition: case-insensitive name, exact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    /// `None` means "the header is present", with any value.
    pub equals: Option<String>,
}
