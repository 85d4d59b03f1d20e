//! A bundled table of common remote models' list prices, so a route on a known model needs no
//! `price = { ... }` line. A route's own `price` always wins.
//!
//! Source: the providers' public API pricing pages (OpenAI, Anthropic), standard tier, no
//! batch or cache discounts, as of [`AS_OF`]. Prices change: check them, and give `price`
//! explicitly where it matters. `sluicegate check` prints which routes use this table.

use rust_decimal::Decimal;

use crate::model::Price;

/// When the table was compiled.
pub const AS_OF: &str = "2025-06";

/// `(model, USD per 1M input tokens, USD per 1M output tokens)`, in hundredths of a cent.
const TABLE: &[(&str, i64, i64)] = &[
    // OpenAI
    ("gpt-4o", 2_5000, 10_0000),
    ("gpt-4o-mini", 1500, 6000),
    ("gpt-4.1", 2_0000, 8_0000),
    ("gpt-4.1-mini", 4000, 1_6000),
    ("gpt-4.1-nano", 1000, 4000),
    ("o3-mini", 1_1000, 4_4000),
    ("o4-mini", 1_1000, 4_4000),
    ("gpt-4-turbo", 10_0000, 30_0000),
    ("gpt-3.5-turbo", 5000, 1_5000),
    // Anthropic
    ("claude-opus-4-0", 15_0000, 75_0000),
    ("claude-sonnet-4-0", 3_0000, 15_0000),
    ("claude-3-7-sonnet-latest", 3_0000, 15_0000),
    ("claude-3-5-sonnet-latest", 3_0000, 15_0000),
    ("claude-3-5-haiku-latest", 8000, 4_0000),
    ("claude-3-haiku-20240307", 2500, 1_2500),
];

/// The bundled price of `model`. Dated snapshots (`gpt-4o-2024-08-06`,
/// `claude-sonnet-4-20250514`) match their family's entry by the longest known prefix.
pub fn bundled(model: &str) -> Option<Price> {
    let model = model.trim().to_ascii_lowercase();
    let family = |name: &str| {
        // "claude-sonnet-4-0" also names "claude-sonnet-4-20250514".
        name.strip_suffix("-0")
            .or_else(|| name.strip_suffix("-latest"))
            .unwrap_or(name)
            .to_owned()
    };
    TABLE
        .iter()
        .filter(|(name, ..)| {
            let f = family(name);
            model == *name
                || model == f
                || model
                    .strip_prefix(&f)
                    .is_some_and(|rest| rest.starts_with('-') && is_date_suffix(&rest[1..]))
        })
        .max_by_key(|(name, ..)| name.len())
        .map(|&(_, input, output)| Price {
            input_per_mtok: Decimal::new(input, 4),
            output_per_mtok: Decimal::new(output, 4),
        })
}

/// `2024-08-06` or `20250514`.
fn is_date_suffix(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    digits.len() == 8 && s.chars().all(|c| c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn known_models_and_dated_snapshots_have_prices() {
        let p = bundled("gpt-4o").unwrap();
        assert_eq!(
            (p.input_per_mtok, p.output_per_mtok),
            (d("2.50"), d("10.00"))
        );
        let p = bundled("gpt-4o-2024-08-06").unwrap();
        assert_eq!(p.input_per_mtok, d("2.5"));
        // The longest matching family wins: not gpt-4o's price.
        let p = bundled("gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(
            (p.input_per_mtok, p.output_per_mtok),
            (d("0.15"), d("0.60"))
        );
        let p = bundled("claude-sonnet-4-20250514").unwrap();
        assert_eq!(p.output_per_mtok, d("15"));
        let p = bundled("claude-3-5-haiku-20241022").unwrap();
        assert_eq!(p.input_per_mtok, d("0.80"));
    }

    #[test]
    fn unknown_models_and_lookalikes_have_none() {
        for model in ["llama3.2:1b", "gpt-4o-minimal", "gpt-4", "my-gpt-4o", ""] {
            assert_eq!(bundled(model), None, "{model}");
        }
    }
}
