//! Phase 2: resolve defaults and cross-references, collecting every problem.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{join, Errors, PolicyErrors};
use crate::model::{
    BackendConfig, BackendKind, LedgerConfig, Policy, Price, PriceSource, RouteConfig,
    ServerConfig, Timeouts,
};
use crate::raw::{RawBackend, RawLedger, RawPolicy, RawRoute, RawServer};
use crate::{classifier, local, prices, rules, telemetry, values};

/// The model name clients send to let the policy choose; no route may use it.
pub const AUTO_MODEL: &str = "auto";

/// Validates a phase-1 policy, reporting every problem found.
pub fn validate(raw: RawPolicy) -> Result<Policy, PolicyErrors> {
    let mut errors = Errors::default();
    let route_names: BTreeSet<&str> = raw.routes.keys().map(String::as_str).collect();

    let server = server(raw.server.unwrap_or_default(), &mut errors);
    if raw.backends.is_empty() {
        errors.push("backends", "at least one backend is required");
    }
    let backends = raw
        .backends
        .iter()
        .map(|(name, b)| (name.clone(), backend(name, b, &mut errors)))
        .collect();
    if raw.routes.is_empty() {
        errors.push("routes", "at least one route is required");
    }
    let routes = raw
        .routes
        .iter()
        .map(|(name, r)| {
            let route = route(name, r, &raw.backends, &route_names, &mut errors);
            (name.clone(), route)
        })
        .collect();
    let routing = rules::routing(raw.policy, &route_names, &mut errors);
    let ledger = ledger(raw.ledger.unwrap_or_default(), &route_names, &mut errors);
    let classifier = classifier::classifier(raw.classifier, raw.classes, &route_names, &mut errors);
    classifier::check_rules(&routing, classifier.as_ref(), &mut errors);
    let telemetry = telemetry::telemetry(raw.telemetry, &mut errors);

    if errors.0.is_empty() {
        Ok(Policy {
            server,
            backends,
            routes,
            routing,
            ledger,
            classifier,
            telemetry,
        })
    } else {
        Err(PolicyErrors(errors.0))
    }
}

fn duration(
    errors: &mut Errors,
    path: &str,
    text: Option<&str>,
    default: Duration,
    allow_zero: bool,
) -> Duration {
    text.and_then(|t| errors.check(path, values::duration(t, allow_zero)))
        .unwrap_or(default)
}

fn server(raw: RawServer, errors: &mut Errors) -> ServerConfig {
    let defaults = ServerConfig::default();
    let listen = match raw.listen {
        None => defaults.listen,
        Some(text) => text.trim().parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(
                "server.listen",
                format!(
                    "invalid listen address {text:?}: write IP:port, e.g. \"127.0.0.1:8080\" \
                     or \"[::1]:8080\" (host names are not accepted)"
                ),
            );
            defaults.listen
        }),
    };
    let body_limit = raw
        .body_limit
        .and_then(|s| errors.check("server.body_limit", values::size(&s)))
        .unwrap_or(defaults.body_limit);
    let admin_key_env = raw.admin_key_env.inspect(|env| {
        let checked = if env.is_empty() {
            Err("must not be empty (omit admin_key_env to leave the dashboard open)".to_owned())
        } else {
            values::env_name(env)
        };
        errors.check("server.admin_key_env", checked);
    });
    ServerConfig {
        listen,
        body_limit,
        request_timeout: duration(
            errors,
            "server.request_timeout",
            raw.request_timeout.as_deref(),
            defaults.request_timeout,
            false,
        ),
        shutdown_grace: duration(
            errors,
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            defaults.shutdown_grace,
            true,
        ),
        admin_key_env,
    }
}

fn required<'a>(errors: &mut Errors, path: &str, value: Option<&'a str>) -> &'a str {
    match value {
        None => {
            errors.push(path, "missing required key");
            ""
        }
        Some(v) if v.trim().is_empty() => {
            errors.push(path, "must not be empty");
            ""
        }
        Some(v) => v,
    }
}

fn backend(name: &str, raw: &RawBackend, errors: &mut Errors) -> BackendConfig {
    let path = join("backends", name);
    errors.check(&path, values::name("backend", name));
    if let RawBackend::Local(local) = raw {
        return local::backend(name, &path, local, errors);
    }
    let at = |key: &str| join(&path, key);
    let common = raw.common();

    // (`Local` returned above.)
    let default_url = match raw {
        RawBackend::OpenAi(_) | RawBackend::Local(_) => BackendKind::OPENAI_DEFAULT_BASE_URL,
        RawBackend::Anthropic(_) => BackendKind::ANTHROPIC_DEFAULT_BASE_URL,
    };
    let base_url = common
        .base_url
        .and_then(|u| errors.check(&at("base_url"), values::base_url(u)))
        .unwrap_or_else(|| default_url.to_owned());
    let api_key_env = common.api_key_env.map(|env| {
        errors.check(&at("api_key_env"), values::env_name(env));
        env.to_owned()
    });
    let model = required(errors, &at("model"), common.model).to_owned();

    let defaults = Timeouts::default();
    let timeouts = Timeouts {
        connect: duration(
            errors,
            &at("connect_timeout"),
            common.connect_timeout,
            defaults.connect,
            false,
        ),
        first_byte: duration(
            errors,
            &at("first_byte_timeout"),
            common.first_byte_timeout,
            defaults.first_byte,
            false,
        ),
        total: duration(
            errors,
            &at("total_timeout"),
            common.total_timeout,
            defaults.total,
            false,
        ),
    };

    let kind = match raw {
        RawBackend::OpenAi(_) | RawBackend::Local(_) => BackendKind::OpenAi {
            base_url,
            api_key_env,
            model,
        },
        RawBackend::Anthropic(a) => {
            let max_tokens = match a.max_tokens {
                None => BackendKind::ANTHROPIC_DEFAULT_MAX_TOKENS,
                Some(0) => {
                    errors.push(at("max_tokens"), "must be greater than zero");
                    0
                }
                Some(n) => errors
                    .check(&at("max_tokens"), values::tokens(n))
                    .unwrap_or_default(),
            };
            let version = match a.anthropic_version.as_deref() {
                None => BackendKind::ANTHROPIC_DEFAULT_VERSION.to_owned(),
                Some(v) => required(errors, &at("anthropic_version"), Some(v)).to_owned(),
            };
            BackendKind::Anthropic {
                base_url,
                api_key_env,
                model,
                max_tokens,
                version,
            }
        }
    };
    BackendConfig {
        name: name.to_owned(),
        kind,
        timeouts,
    }
}

fn route(
    name: &str,
    raw: &RawRoute,
    backends: &BTreeMap<String, RawBackend>,
    routes: &BTreeSet<&str>,
    errors: &mut Errors,
) -> RouteConfig {
    let path = join("routes", name);
    if name == AUTO_MODEL {
        errors.push(
            &path,
            "the route name \"auto\" is reserved: clients send model \"auto\" to let \
             the policy choose; pick another name",
        );
    } else {
        errors.check(&path, values::name("route", name));
    }
    let at = |key: &str| join(&path, key);

    let backend = required(errors, &at("backend"), raw.backend.as_deref()).to_owned();
    if !backend.is_empty() && !backends.contains_key(&backend) {
        errors.push(at("backend"), format!("no backend named {backend:?}"));
    }

    let mut price = Price::default();
    let mut price_source = PriceSource::Unknown;
    if raw.price.is_none() {
        let remote_model = match backends.get(&backend) {
            Some(RawBackend::OpenAi(b)) => b.model.as_deref(),
            Some(RawBackend::Anthropic(b)) => b.model.as_deref(),
            _ => None,
        };
        if let Some(bundled) = remote_model.and_then(prices::bundled) {
            price = bundled;
            price_source = PriceSource::Bundled;
        }
    }
    if let Some(p) = &raw.price {
        price_source = PriceSource::Policy;
        let price_path = at("price");
        if let Some(input) = &p.input {
            let result = values::price(&input.0);
            if let Some(v) = errors.check(&join(&price_path, "input"), result) {
                price.input_per_mtok = v;
            }
        }
        if let Some(output) = &p.output {
            let result = values::price(&output.0);
            if let Some(v) = errors.check(&join(&price_path, "output"), result) {
                price.output_per_mtok = v;
            }
        }
    }

    let fallback = raw.fallback.clone().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, target) in fallback.iter().enumerate() {
        let entry = format!("{}[{i}]", at("fallback"));
        if target == name {
            errors.push(entry, format!("route {name:?} cannot fall back to itself"));
        } else if !routes.contains(target.as_str()) {
            errors.push(entry, format!("no route named {target:?}"));
        } else if !seen.insert(target.as_str()) {
            errors.push(entry, format!("{target:?} is listed more than once"));
        }
    }

    RouteConfig {
        name: name.to_owned(),
        backend,
        price,
        price_source,
        fallback,
        description: raw.description.clone(),
    }
}

fn ledger(raw: RawLedger, route_names: &BTreeSet<&str>, errors: &mut Errors) -> LedgerConfig {
    let default = LedgerConfig::default();
    let url = errors
        .non_blank("ledger.url", raw.url)
        .unwrap_or(default.url);
    if let Some(route) = &raw.reference_route {
        if !route_names.contains(route.as_str()) {
            errors.push(
                "ledger.reference_route",
                format!("no route named {route:?}"),
            );
        }
    }
    LedgerConfig {
        enabled: raw.enabled.unwrap_or(default.enabled),
        url,
        reference_route: raw.reference_route,
        store_content: raw.store_content.unwrap_or(default.store_content),
    }
}
