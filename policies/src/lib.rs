//! The sluicegate routing policy: TOML schema, two-phase parse and validation.
//!
//! Phase 1 ([`raw`]) deserializes the TOML strictly (unknown keys and wrong
//! types are errors, located by key path). Phase 2 ([`validate`]) resolves
//! defaults and cross-references and reports *every* problem it finds.
//!
//! ```
//! let policy = sluicegate_policies::parse(sluicegate_policies::DEFAULT_POLICY).unwrap();
//! assert_eq!(policy.routing.default, "local");
//! ```
//!
//! # Module layering
//!
//! Each module imports only from those listed above it (leaves first), so the
//! module graph has no cycle:
//!
//! 1. `error`: [`PolicyError`], [`PolicyErrors`], key-path joining, and the
//!    `Errors` collector of phase 2. Imports nothing from the crate.
//! 2. `model`: the validated types (`model/routing.rs` holds the rules and the
//!    classifier). Plain data; imports nothing from the crate.
//! 3. [`raw`]: every phase-1 serde struct, sections included; `error`.
//! 4. `values`: phase-2 checks of single scalars; `raw` (for `RawSize`).
//! 5. [`prices`]: the bundled price table; `model`.
//! 6. The sections' phase 2, one function (or two) each: `rules`, `classifier`,
//!    `local`, `telemetry`; `error`, `raw`, `model`, `values`.
//! 7. `validate`: phase-2 orchestration (server, backends, routes, ledger, and
//!    the sections in turn); all of the above.
//! 8. This file: re-exports, [`parse`] and [`load`]. Tests (`tests/`) sit here too.

mod classifier;
mod error;
mod local;
mod model;
pub mod prices;
pub mod raw;
mod rules;
mod telemetry;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{PolicyError, PolicyErrors};
pub use model::{
    BackendConfig, BackendKind, ClassConfig, ClassifierConfig, ClassifierInput, Conditions,
    ContextOverflow, ExampleMatch, HeaderMatch, LedgerConfig, LocalConfig, LocalDefaults,
    LocalWeights, Policy, Price, PriceSource, RouteConfig, RoutingPolicy, Rule, ServerConfig,
    TelemetryConfig, Timeouts,
};
pub use raw::{RawClass, RawClassifier, RawLocal, RawPolicy, RawTelemetry};
pub use rules::RESERVED_RULE_NAMES;
pub use validate::{validate, AUTO_MODEL};

/// The embedded default policy (`examples/default.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../examples/default.toml");

/// Parses and validates a policy from TOML text.
pub fn parse(src: &str) -> Result<Policy, PolicyErrors> {
    validate(raw::from_str(src)?)
}

/// Reads, parses and validates a policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        PolicyError::new(
            "",
            format!("cannot read policy file {}: {e}", path.display()),
        )
    })?;
    let mut policy = parse(&src)?;
    // Relative classifier paths are relative to the policy file, not the working directory.
    if let (Some(c), Some(dir)) = (policy.classifier.as_mut(), path.parent()) {
        c.resolve_paths(dir);
    }
    Ok(policy)
}
