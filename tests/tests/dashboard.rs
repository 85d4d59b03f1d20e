//! `/api/usage`, `/dashboard` and `sluicegate report` against the real binary, after real
//! traffic: every figure equals what the ledger's SQLite file holds, worked out here from
//! the raw rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::str::FromStr;

use serde_json::Value;
use sluicegate_gateway::usage::Decimal;
use sluicegate_tests::usage::{assert_close, start_with_traffic, Expected, ADMIN_KEY};
use sluicegate_tests::{assert_openai_error, http_client, run_sluicegate};

fn report(policy: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["report", "--config", policy.to_str().unwrap()];
    all.extend(args);
    let out = run_sluicegate(&all, &[]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn usage_api_and_report_match_the_ledger() {
    let traffic = start_with_traffic().await;
    let base = traffic.gateway.url();
    let rows = traffic.ledger_rows().await;
    let (total, routes) = Expected::by_route(&rows, "big");
    assert_eq!(total.requests, 14);
    assert!(total.savings > Decimal::ZERO, "big costs more than small");

    let client = http_client();
    // Without the key, with a wrong one: 401 in OpenAI's shape.
    for auth in [None, Some("Bearer nope")] {
        let mut r = client.get(format!("{base}/api/usage?window=1h"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(assert_openai_error(&body)["code"], "invalid_api_key");
    }
    let r = client
        .get(format!("{base}/api/usage?window=30d"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(assert_openai_error(&body)["param"], "window");

    let usage = traffic.usage("1h").await;
    assert_eq!(usage["window"], "1h");
    assert_eq!(usage["reference_route"], "big");
    total.assert_matches(&usage["totals"], "totals");
    let share = usage["totals"]["escalation_share"].as_f64();
    assert_close(
        share,
        Some(2.0 / 13.0),
        "2 of 13 routed requests went to big",
    );
    let api_routes = usage["routes"].as_array().unwrap();
    assert_eq!(api_routes.len(), routes.len());
    for r in api_routes {
        let key = r["route"].as_str().map(str::to_owned);
        routes[&key].assert_matches(r, &format!("route {key:?}"));
    }
    // The same requests by class: what the classifier said, as the ledger holds it.
    let classes = Expected::by_class(&rows, "big");
    let api_classes = usage["classes"].as_array().unwrap();
    assert_eq!(api_classes.len(), classes.len(), "{api_classes:?}");
    for c in api_classes {
        let key = c["class"].as_str().map(str::to_owned);
        classes[&key].assert_matches(c, &format!("class {key:?}"));
    }
    // The series add up to the totals.
    let series = usage["series"].as_array().unwrap();
    let sum: u64 = series.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, total.requests);
    let cost: Decimal = series
        .iter()
        .map(|p| Decimal::from_str(p["cost_usd"].as_str().unwrap()).unwrap())
        .sum();
    assert_eq!(cost, total.cost);
    let buckets: BTreeSet<i64> = series
        .iter()
        .map(|p| p["bucket_start_ms"].as_i64().unwrap())
        .collect();
    assert!(
        (60..=61).contains(&buckets.len()),
        "{} buckets",
        buckets.len()
    );
    // All the traffic is recent: the longer windows hold the same.
    for window in ["24h", "7d"] {
        let wide = traffic.usage(window).await;
        total.assert_matches(&wide["totals"], window);
    }

    // `sluicegate report --format json` prints the same figures.
    let (ok, out, err) = report(&traffic.policy, &["--since", "1h", "--format", "json"]);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["by"], "route");
    assert_eq!(json["totals"], usage["totals"]);
    assert_eq!(json["groups"], usage["routes"]);

    // By backend, as CSV: one line per backend plus the total.
    let (ok, out, err) = report(
        &traffic.policy,
        &["--since", "2h", "--by", "backend", "--format", "csv"],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("scope,backend,requests,errors,cost_usd,"),
        "{out}"
    );
    assert_eq!(
        lines.len(),
        1 + 4 + 1,
        "small, big, bad, none, total:\n{out}"
    );
    let total_line: Vec<&str> = lines.last().unwrap().split(',').collect();
    assert_eq!(
        total_line[0..5],
        ["total", "", "14", "3", &total.cost.normalize().to_string()]
    );
    let small: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("group,small,"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(small[2], "9");
    assert_eq!(
        small[4],
        routes[&Some("small".into())].cost.normalize().to_string()
    );

    // The table: every route, and the total with the exact cost.
    let (ok, out, err) = report(&traffic.policy, &["--since", "1h"]);
    assert!(ok, "{err}");
    let total_row = out.lines().find(|l| l.starts_with("TOTAL")).unwrap();
    let cells: Vec<&str> = total_row.split_whitespace().collect();
    assert_eq!(cells[1], "14");
    assert_eq!(cells[3], total.cost.normalize().to_string(), "{out}");
    assert_eq!(cells[5], total.savings.normalize().to_string(), "{out}");
    for name in ["small", "big", "bad", "(none)"] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{out}"
        );
    }
    // By class: greeting (11), billing (2) and the unparsable body's (none) (1).
    let (ok, out, err) = report(&traffic.policy, &["--since", "1h", "--by", "class"]);
    assert!(ok, "{err}");
    for (name, requests) in [("greeting", "11"), ("billing", "2"), ("(none)", "1")] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        assert_eq!(line.split_whitespace().nth(1), Some(requests), "{line}");
    }
    let (ok, _, err) = report(&traffic.policy, &["--since", "yesterday"]);
    assert!(!ok);
    assert!(err.contains("invalid duration"), "{err}");

    // Looking at the figures recorded nothing.
    assert_eq!(traffic.ledger_rows().await.len(), traffic.requests_sent);
}

#[tokio::test]
async fn the_dashboard_page_needs_the_key_once() {
    let traffic = start_with_traffic().await;
    let base = traffic.gateway.url();
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!("{base}/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = no_redirects
        .get(format!("{base}/dashboard?key={ADMIN_KEY}&window=1h"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/dashboard?window=1h");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains(ADMIN_KEY));
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = no_redirects
        .get(format!("{base}/dashboard?window=1h"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains("/dashboard/app.js") && html.contains("data-testid=\"routes-table\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no other origin"
    );
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let js = no_redirects
        .get(format!("{base}/dashboard/app.js"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("/api/usage"));
    let usage = no_redirects
        .get(format!("{base}/api/usage?window=1h"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), 200, "the cookie opens the API too");
    let rows = traffic.ledger_rows().await;
    assert_eq!(rows.len(), traffic.requests_sent);
}
