use std::time::Duration;

use rust_decimal::Decimal;

use crate::raw::RawSize;
use crate::values::{base_url, duration, env_name, header_name, name, price, size, tokens};

#[test]
fn durations() {
    assert_eq!(duration("30s", false), Ok(Duration::from_secs(30)));
    assert_eq!(duration("1m", false), Ok(Duration::from_secs(60)));
    assert_eq!(duration("250ms", false), Ok(Duration::from_millis(250)));
    assert_eq!(duration("0s", true), Ok(Duration::ZERO));
    assert!(duration("0s", false)
        .unwrap_err()
        .contains("greater than zero"));
    assert!(duration("30", false).is_err());
    assert!(duration("30 sex", false)
        .unwrap_err()
        .starts_with("invalid duration \"30 sex\": "));
}

#[test]
fn sizes() {
    let text = |s: &str| size(&RawSize::Text(s.to_owned()));
    assert_eq!(text("512KiB"), Ok(512 * 1024));
    assert_eq!(text("4MiB"), Ok(4 * 1024 * 1024));
    assert_eq!(text("1MB"), Ok(1_000_000));
    assert_eq!(text("1GiB"), Ok(1 << 30));
    assert_eq!(text("2 kb"), Ok(2000));
    assert_eq!(text("100"), Ok(100));
    assert_eq!(size(&RawSize::Bytes(42)), Ok(42));
    assert!(size(&RawSize::Bytes(-1)).is_err());
    assert!(size(&RawSize::Bytes(0)).is_err());
    assert!(text("0MiB").is_err());
    assert!(text("MiB").is_err());
    assert!(text("1.5MiB").is_err());
    assert!(text("4 TB").unwrap_err().contains("unknown unit"));
    assert!(text("99999999999999999999GiB").is_err());
}

#[test]
fn prices() {
    assert_eq!(price("0.15"), Ok("0.15".parse::<Decimal>().unwrap()));
    assert_eq!(price("0"), Ok(Decimal::ZERO));
    assert_eq!(price("1e-7"), Ok("0.0000001".parse::<Decimal>().unwrap()));
    assert!(price("-0.01").unwrap_err().contains("must not be negative"));
    assert!(price("NaN").is_err());
    assert!(price("").is_err());
}

#[test]
fn names() {
    assert!(name("route", "gpt-4o.mini_2").is_ok());
    assert!(name("route", "").is_err());
    assert!(name("route", "a b").is_err());
    assert!(name("route", "a/b").is_err());
    assert!(name("route", "é").is_err());
}

#[test]
fn urls() {
    assert_eq!(
        base_url("https://api.openai.com/v1/").as_deref(),
        Ok("https://api.openai.com/v1")
    );
    assert_eq!(
        base_url("https://api.anthropic.com").as_deref(),
        Ok("https://api.anthropic.com")
    );
    assert!(base_url("ftp://x/").is_err());
    assert!(base_url("api.openai.com").is_err());
    assert!(base_url("https://x/v1?key=1").is_err());
}

#[test]
fn env_names() {
    assert!(env_name("OPENAI_API_KEY").is_ok());
    assert!(env_name("_K1").is_ok());
    assert!(env_name("").is_err());
    assert!(env_name("1KEY").is_err());
    assert!(env_name("sk-proj-abc").is_err());
}

#[test]
fn header_names() {
    assert_eq!(header_name("X-Tier").as_deref(), Ok("x-tier"));
    assert!(header_name("").is_err());
    assert!(header_name("x tier").is_err());
    assert!(header_name("x:tier").is_err());
}

#[test]
fn token_counts() {
    assert_eq!(tokens(0), Ok(0));
    assert_eq!(tokens(3000), Ok(3000));
    assert!(tokens(-1).is_err());
    assert!(tokens(i64::from(u32::MAX) + 1).is_err());
}
