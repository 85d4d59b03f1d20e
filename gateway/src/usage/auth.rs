//! The admin key that guards `/dashboard` and `/api/usage` when the policy sets
//! `server.admin_key_env`.
//!
//! A request is let in by `Authorization: Bearer <key>`, or by the `sluicegate_admin`
//! cookie that `/dashboard?key=<key>` sets (so a browser can open the page once by URL).
//! The cookie holds a SHA-256 of the key, never the key. Keys are compared as SHA-256
//! digests with a constant-time equality, so timing says nothing about the key.

use std::fmt;

use axum_extra::headers::{authorization::Bearer, Authorization, Cookie, HeaderMapExt};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The cookie `/dashboard?key=` sets.
pub const COOKIE: &str = "sluicegate_admin";

/// Who may read the admin endpoints.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminKey {
    /// No admin key configured: open to anyone who can reach the gateway.
    Open,
    /// `Authorization: Bearer <key>` (or the cookie) is required.
    Required { env: String, digest: [u8; 32] },
    /// The policy names a variable that is unset or empty: everything is refused.
    Missing { env: String },
}

impl fmt::Debug for AdminKey {
    // Never prints the key's digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminKey::Open => f.write_str("AdminKey::Open"),
            AdminKey::Required { env, .. } => write!(f, "AdminKey::Required({env})"),
            AdminKey::Missing { env } => write!(f, "AdminKey::Missing({env})"),
        }
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ (`subtle`).
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

impl AdminKey {
    /// Reads the key from the variable the policy names (`server.admin_key_env`).
    pub fn from_env(env: Option<&str>) -> AdminKey {
        let Some(env) = env else {
            return AdminKey::Open;
        };
        match std::env::var(env) {
            Ok(key) if !key.is_empty() => AdminKey::with_key(env, &key),
            _ => AdminKey::Missing {
                env: env.to_owned(),
            },
        }
    }

    /// A required key given directly (`env` only names it in messages).
    pub fn with_key(env: &str, key: &str) -> AdminKey {
        AdminKey::Required {
            env: env.to_owned(),
            digest: digest(key),
        }
    }

    /// Whether `candidate` is the key.
    pub fn matches(&self, candidate: &str) -> bool {
        match self {
            AdminKey::Required { digest: d, .. } => same(d, &digest(candidate)),
            AdminKey::Open | AdminKey::Missing { .. } => false,
        }
    }

    /// The value of the session cookie: hex SHA-256 of `"sluicegate-admin:" + key`.
    pub fn cookie_value(&self) -> Option<String> {
        match self {
            AdminKey::Required { digest, .. } => {
                let mut h = Sha256::new();
                h.update(b"sluicegate-admin:");
                h.update(digest);
                Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
            }
            AdminKey::Open | AdminKey::Missing { .. } => None,
        }
    }

    /// Lets a request that presents `candidate` in, or says why not.
    pub fn check_key(&self, candidate: &str) -> Result<(), ApiError> {
        match self {
            AdminKey::Open => Ok(()),
            AdminKey::Missing { .. } => Err(self.closed()),
            AdminKey::Required { .. } if self.matches(candidate) => Ok(()),
            AdminKey::Required { .. } => Err(ApiError::Unauthorized("invalid admin key".into())),
        }
    }

    /// Lets the request in, or says why not (401 in OpenAI's error shape).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            AdminKey::Open => Ok(()),
            AdminKey::Missing { .. } => Err(self.closed()),
            AdminKey::Required { .. } => {
                if let Some(key) = bearer(headers) {
                    return self.check_key(&key);
                }
                let cookie_ok = match (cookie(headers, COOKIE), self.cookie_value()) {
                    (Some(got), Some(want)) => same(&digest(&got), &digest(&want)),
                    _ => false,
                };
                if cookie_ok {
                    Ok(())
                } else {
                    Err(ApiError::Unauthorized(
                        "this endpoint needs the admin key: send `Authorization: Bearer <key>` \
                         (or open /dashboard?key=<key> in a browser)"
                            .into(),
                    ))
                }
            }
        }
    }

    fn closed(&self) -> ApiError {
        let env = match self {
            AdminKey::Required { env, .. } | AdminKey::Missing { env } => env.as_str(),
            AdminKey::Open => "",
        };
        ApiError::Unauthorized(format!(
            "the admin endpoints are closed: the policy's server.admin_key_env names {env}, \
             which is not set on the gateway"
        ))
    }
}

/// The token of `Authorization: Bearer <token>` (`headers`' typed header: the scheme is
/// case-insensitive; a malformed or empty one counts as absent, so the caller answers 401).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let auth = headers.typed_get::<Authorization<Bearer>>()?;
    let token = auth.token().trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The value of cookie `name`, if the request sent it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.typed_get::<Cookie>()?.get(name).map(str::to_owned)
}
