//! The figures of the fixture rows, worked out by hand.

use super::{dec, row, rows, sqlite_with, FROM, TO};
use crate::ledger::Store;
use crate::usage::{load, summarize, Dimension, Since, UsageError, UsageRow, Window};

async fn fixture_summary(reference: Option<&str>) -> crate::usage::Summary {
    let store = sqlite_with(&rows()).await;
    load(&store, Dimension::Route, FROM, TO, Some(60_000), reference)
        .await
        .unwrap()
}

#[tokio::test]
async fn totals_are_exact_decimals() {
    let s = fixture_summary(Some("big")).await;
    let t = &s.totals;
    assert_eq!(t.requests, 6, "the rows outside the window are left out");
    assert_eq!(t.errors, 2);
    assert_eq!(t.routed, 5);
    assert_eq!(t.escalations, 1);
    assert_eq!(t.escalation_share, Some(0.2));
    // 0.00045 + 0.000001 + 0.01 + 0.002
    assert_eq!(t.cost_usd, dec("0.012451"));
    // 0.0045 + 0.00001 + 0.01 + 0.002 (row h has no counterfactual: its own cost)
    assert_eq!(t.counterfactual_cost_usd, dec("0.01651"));
    assert_eq!(t.savings_usd, dec("0.004059"));
    assert_eq!(t.savings_usd, t.counterfactual_cost_usd - t.cost_usd);
    assert_eq!((t.input_tokens, t.output_tokens), (1112, 611));
    // latencies [1, 50, 100, 200, 300, 1000]: nearest rank 3 and 6
    assert_eq!(t.p50_latency_ms, Some(100.0));
    assert_eq!(t.p95_latency_ms, Some(1000.0));
    // ttft [10, 20, 30]: ranks 2 and 3
    assert_eq!(t.p50_ttft_ms, Some(20.0));
    assert_eq!(t.p95_ttft_ms, Some(30.0));
    // Money goes out as exact decimal strings.
    let json = serde_json::to_value(t).unwrap();
    assert_eq!(json["cost_usd"], "0.012451");
    assert_eq!(json["savings_usd"], "0.004059");
}

#[tokio::test]
async fn groups_by_route_with_the_unrouted_last() {
    let s = fixture_summary(Some("big")).await;
    let keys: Vec<Option<&str>> = s.groups.iter().map(|g| g.key.as_deref()).collect();
    assert_eq!(keys, [Some("big"), Some("small"), None]);
    let big = &s.groups[0].stats;
    assert_eq!((big.requests, big.escalations), (1, 1));
    assert_eq!(big.escalation_share, Some(1.0));
    assert_eq!(big.savings_usd, dec("0"));
    let small = &s.groups[1].stats;
    assert_eq!((small.requests, small.errors), (4, 1));
    assert_eq!(small.escalation_share, Some(0.0));
    assert_eq!(small.cost_usd, dec("0.002451"));
    assert_eq!(small.savings_usd, dec("0.004059"));
    // [50, 100, 200, 300]
    assert_eq!(small.p50_latency_ms, Some(100.0));
    assert_eq!(small.p95_latency_ms, Some(300.0));
    let none = &s.groups[2].stats;
    assert_eq!((none.requests, none.routed), (1, 0));
    assert_eq!(none.escalation_share, None);
    let json = serde_json::to_value(s.groups[2].keyed(Dimension::Route)).unwrap();
    assert_eq!(json["route"], serde_json::Value::Null);
    assert_eq!(json["requests"], 1);
}

#[tokio::test]
async fn series_has_every_bucket_of_every_group() {
    let s = fixture_summary(Some("big")).await;
    // 1h of 1-minute buckets, both ends included, for 3 groups.
    assert_eq!(s.series.len(), 3 * 61);
    let small: Vec<_> = s
        .series
        .iter()
        .filter(|p| p.key.as_deref() == Some("small"))
        .collect();
    assert_eq!(small.len(), 61);
    assert_eq!(small[0].bucket_start_ms, FROM);
    assert_eq!(small[60].bucket_start_ms, TO);
    assert!(small
        .windows(2)
        .all(|w| w[1].bucket_start_ms - w[0].bucket_start_ms == 60_000));
    // Rows a and b share the first minute.
    assert_eq!(small[0].stats.requests, 2);
    assert_eq!(small[0].stats.cost_usd, dec("0.000451"));
    assert_eq!(small[0].stats.p50_latency_ms, Some(100.0));
    assert_eq!(small[0].stats.p95_latency_ms, Some(300.0));
    // An empty bucket: zero requests, no latency.
    assert_eq!(small[1].stats.requests, 0);
    assert_eq!(small[1].stats.cost_usd, dec("0"));
    assert_eq!(small[1].stats.p50_latency_ms, None);
    assert_eq!(small[3].stats.requests, 1, "row h at minute 3");
    let total: u64 = s.series.iter().map(|p| p.stats.requests).sum();
    assert_eq!(total, s.totals.requests);
    let cost: rust_decimal::Decimal = s.series.iter().map(|p| p.stats.cost_usd).sum();
    assert_eq!(cost, s.totals.cost_usd);
}

#[tokio::test]
async fn without_a_reference_route_there_is_no_escalation_share() {
    let s = fixture_summary(None).await;
    assert_eq!(s.totals.escalations, 0);
    assert_eq!(s.totals.escalation_share, None);
    assert_eq!(s.totals.savings_usd, dec("0.004059"));
}

#[tokio::test]
async fn other_dimensions_group_the_same_rows() {
    let store = sqlite_with(&rows()).await;
    for by in [Dimension::Backend, Dimension::Class] {
        let s = load(&store, by, FROM, TO, None, Some("big")).await.unwrap();
        assert!(s.series.is_empty());
        let keys: Vec<Option<String>> = s.groups.iter().map(|g| g.key.clone()).collect();
        let (big, small) = match by {
            Dimension::Backend => ("big-backend", "small-backend"),
            _ => ("class-of-big", "class-of-small"),
        };
        assert_eq!(keys, [Some(big.into()), Some(small.into()), None]);
        assert_eq!(s.groups[1].stats.cost_usd, dec("0.002451"));
        assert_eq!(s.totals.cost_usd, dec("0.012451"));
    }
}

#[tokio::test]
async fn an_unreadable_cost_is_an_error_not_a_zero() {
    let store = sqlite_with(&rows()).await;
    let Store::Sqlite(pool) = &store else {
        unreachable!()
    };
    sqlx::query("UPDATE ledger SET cost_usd = 'lots' WHERE request_id = 'a'")
        .execute(pool)
        .await
        .unwrap();
    let err = load(&store, Dimension::Route, FROM, TO, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UsageError::BadValue { column: "cost_usd", value, .. } if value == "lots"),
        "{err}"
    );
}

#[test]
fn rows_outside_the_range_are_ignored_even_when_passed_in() {
    let all: Vec<UsageRow> = rows().iter().map(UsageRow::from).collect();
    let s = summarize(&all, Dimension::Route, FROM, TO, None, None);
    assert_eq!(s.totals.requests, 6);
    let one = [UsageRow::from(&row(
        "x",
        5,
        Some("r"),
        200,
        Some("1"),
        None,
        1.0,
        None,
        (1, 1),
    ))];
    assert_eq!(
        summarize(&one, Dimension::Route, 0, 10, None, None)
            .totals
            .cost_usd,
        dec("1")
    );
}

#[test]
fn windows_and_look_backs_parse() {
    assert_eq!("1h".parse::<Window>(), Ok(Window::Hour));
    assert_eq!(
        "7d".parse::<Window>().map(Window::bucket_ms),
        Ok(6 * 3_600_000)
    );
    assert_eq!(
        "24h".parse::<Window>().map(Window::bucket_ms),
        Ok(30 * 60_000)
    );
    assert!("2h".parse::<Window>().unwrap_err().contains("1h, 24h, 7d"));
    assert_eq!(Since::parse("24h").unwrap().duration.as_secs(), 86_400);
    assert_eq!(Since::parse("90m").unwrap().duration.as_secs(), 5_400);
    assert_eq!(Since::parse("2w").unwrap().text, "2w");
    for bad in ["", "h", "24", "1y", "0h", "-1h", "99999999999999999999d"] {
        assert!(Since::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[tokio::test]
async fn local_rows_show_busy_seconds_and_the_rate_they_imply() {
    // Two local rows priced by the hour: 0.000025 USD for 1.8 s and 0.000005 USD for 0.36 s,
    // 150 + 50 tokens; one remote row without busy time.
    let mut a = row(
        "a",
        FROM,
        Some("local"),
        200,
        Some("0.000025"),
        Some("0.0001"),
        1900.0,
        None,
        (100, 50),
    );
    a.compute_ms = Some(1800.0);
    let mut b = row(
        "b",
        FROM + 1,
        Some("local"),
        200,
        Some("0.000005"),
        Some("0.0001"),
        400.0,
        None,
        (40, 10),
    );
    b.compute_ms = Some(360.0);
    let c = row(
        "c",
        FROM + 2,
        Some("remote"),
        200,
        Some("0.01"),
        Some("0.01"),
        900.0,
        None,
        (100, 100),
    );
    let store = sqlite_with(&[a, b, c]).await;
    let s = load(&store, Dimension::Route, FROM, TO, None, Some("remote"))
        .await
        .unwrap();
    let local = &s.groups[0].stats;
    assert_eq!(s.groups[0].key.as_deref(), Some("local"));
    assert!((local.compute_seconds - 2.16).abs() < 1e-9);
    // 0.00003 USD / 200 tokens * 1M = 0.15 USD per 1M tokens
    assert_eq!(local.implied_usd_per_mtok, Some(dec("0.15")));
    let remote = &s.groups[1].stats;
    assert_eq!(remote.implied_usd_per_mtok, None);
    assert_eq!(remote.compute_seconds, 0.0);
    let json = serde_json::to_value(local).unwrap();
    assert_eq!(json["implied_usd_per_mtok"], "0.15");
}
