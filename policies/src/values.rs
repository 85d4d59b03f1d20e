//! Phase-2 value checks for single scalars. Each returns the message of the
//! problem; the caller attaches the key path.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::raw::RawSize;

/// Checks a backend, route or rule name: non-empty, `[A-Za-z0-9._-]` only.
pub fn name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name must not be empty"));
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: use only letters, digits, '.', '_' and '-'"
        ))
    }
}

/// A humantime duration such as `"30s"`, `"1m"` or `"250ms"`.
pub fn duration(text: &str, allow_zero: bool) -> Result<Duration, String> {
    let value = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (write e.g. \"30s\", \"1m\", \"250ms\")")
    })?;
    if value.is_zero() && !allow_zero {
        return Err(format!("duration {text:?} must be greater than zero"));
    }
    Ok(value)
}

/// A byte size: an integer, or a number with a unit (`B`, `KB`, `KiB`, `MB`,
/// `MiB`, `GB`, `GiB`; case-insensitive). Must be greater than zero.
pub fn size(raw: &RawSize) -> Result<usize, String> {
    const HINT: &str = "write bytes or e.g. \"512KiB\", \"4MiB\", \"1MB\", \"1GiB\"";
    let bytes = match raw {
        RawSize::Bytes(n) => {
            u64::try_from(*n).map_err(|_| format!("size {n} must not be negative"))?
        }
        RawSize::Text(text) => {
            let trimmed = text.trim();
            let split = trimmed
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(trimmed.len());
            let (digits, unit) = trimmed.split_at(split);
            if digits.is_empty() {
                return Err(format!("invalid size {text:?}: {HINT}"));
            }
            let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" => 1_000,
                "kib" => 1 << 10,
                "m" | "mb" => 1_000_000,
                "mib" => 1 << 20,
                "g" | "gb" => 1_000_000_000,
                "gib" => 1 << 30,
                other => {
                    return Err(format!(
                        "invalid size {text:?}: unknown unit {other:?} ({HINT})"
                    ))
                }
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(multiplier))
                .ok_or_else(|| format!("invalid size {text:?}: too large"))?
        }
    };
    if bytes == 0 {
        return Err("size must be greater than zero".to_owned());
    }
    usize::try_from(bytes).map_err(|_| format!("size of {bytes} bytes is too large"))
}

/// A non-negative decimal amount (a price).
pub fn price(text: &str) -> Result<Decimal, String> {
    let value = Decimal::from_str(text.trim())
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| format!("invalid price {text:?}: write a decimal such as \"0.15\""))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("price must not be negative (got {text})"));
    }
    Ok(value)
}

/// An `http://` or `https://` base URL, returned without trailing slashes.
pub fn base_url(text: &str) -> Result<String, String> {
    let url =
        url::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not an http(s) URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{text:?} is not an http(s) URL (e.g. \"https://api.openai.com/v1\")"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL: it holds a credential.
        return Err("base_url must not contain credentials; name the key's \
                    environment variable in api_key_env instead"
            .to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query string or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The *name* of an environment variable. The value is never echoed, in case
/// someone pasted the key itself here.
pub fn env_name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(
            "must not be empty (omit api_key_env for backends that need no key)".to_owned(),
        );
    }
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(
            "must be the NAME of an environment variable (letters, digits and '_', \
             not starting with a digit), not the API key itself"
                .to_owned(),
        )
    }
}

/// An HTTP header name, returned lower-case.
pub fn header_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("header name must not be empty".to_owned());
    }
    let token = text.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '!' | '#'
                    | '$'
                    | '%'
                    | '&'
                    | '\''
                    | '*'
                    | '+'
                    | '-'
                    | '.'
                    | '^'
                    | '_'
                    | '`'
                    | '|'
                    | '~'
            )
    });
    if token {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a valid HTTP header name"))
    }
}

/// A token count: a non-negative integer that fits in `u32`.
pub fn tokens(value: i64) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| {
        if value < 0 {
            format!("must not be negative (got {value})")
        } else {
            format!("{value} is too large (at most {})", u32::MAX)
        }
    })
}
