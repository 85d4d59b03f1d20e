//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
//! `playwright-core` (tests/browser/dashboard.mjs) opens `/dashboard` after real traffic went
//! through the gateway; every number it shows must equal `/api/usage` and the ledger. The
//! screenshot goes to `target/test-artifacts/dashboard.png`.
//!
//! Needs `node`, `/usr/bin/chromium` (or `CHROMIUM_PATH`) and `tests/browser/node_modules`;
//! `scripts/test` installs them. A missing one fails the test with the command to run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sluicegate_gateway::usage::Decimal;
use sluicegate_tests::usage::{assert_close, start_with_traffic, Expected, ADMIN_KEY};
use sluicegate_tests::workspace_dir;

/// The browser, the Node script's directory and its installed packages, or a failure that
/// says how to install what is missing.
fn browser_tools() -> (PathBuf, PathBuf) {
    let node = std::process::Command::new("node").arg("--version").output();
    let version = node
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(
        !version.is_empty(),
        "the browser test needs Node.js >= 20: `apt-get install -y nodejs npm` (scripts/test does it)"
    );
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "playwright-core needs Node.js >= 20, `node --version` says {version}"
    );
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "the browser test needs Chromium at {}: `apt-get install -y chromium` \
         (scripts/test does it), or set CHROMIUM_PATH",
        chromium.display()
    );
    let dir = workspace_dir().join("tests").join("browser");
    assert!(
        dir.join("node_modules").join("playwright-core").is_dir(),
        "the browser test needs playwright-core: `cd tests/browser && npm ci` (scripts/test does it)"
    );
    (chromium, dir)
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn money(text: &str) -> Decimal {
    let digits = text
        .strip_prefix('$')
        .unwrap_or_else(|| panic!("not a dollar amount: {text:?}"));
    Decimal::from_str(digits).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// "12.3 ms" → 12.3; "–" → None.
fn millis(text: &str) -> Option<f64> {
    if text == "–" {
        return None;
    }
    let n = text
        .strip_suffix(" ms")
        .unwrap_or_else(|| panic!("not a duration: {text:?}"));
    Some(n.parse().unwrap())
}

/// The page shows milliseconds with one decimal.
fn assert_ms(shown: &str, want: Option<f64>, what: &str) {
    match (millis(shown), want) {
        (Some(s), Some(w)) => assert!((s - w).abs() <= 0.0501, "{what}: shows {shown}, ledger {w}"),
        (s, w) => assert_eq!(s, w, "{what}: shows {shown:?}"),
    }
}

fn share_text(e: &Expected) -> String {
    if e.routed == 0 {
        return "n/a".into();
    }
    format!("{:.1}%", e.escalations as f64 * 100.0 / e.routed as f64)
}

#[tokio::test]
async fn the_dashboard_shows_the_ledger_in_chromium() {
    let (chromium, script_dir) = browser_tools();
    let traffic = start_with_traffic().await;
    let rows = traffic.ledger_rows().await;
    let (total, routes) = Expected::by_route(&rows, "big");
    let api = traffic.usage("1h").await;
    total.assert_matches(&api["totals"], "api totals");

    let screenshot = artifacts_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = format!(
        "{}/dashboard?key={ADMIN_KEY}&window=1h",
        traffic.gateway.url()
    );
    let run = tokio::process::Command::new("node")
        .arg(script_dir.join("dashboard.mjs"))
        .arg(&url)
        .arg(&screenshot)
        .env("CHROMIUM_PATH", &chromium)
        .current_dir(&script_dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser script took more than 120s")
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dashboard.mjs failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let page = &seen["first"];
    assert_eq!(page["state"], "ready", "{page}");
    assert_eq!(page["window"], "1h");
    assert_eq!(page["pressed"], serde_json::json!(["1h"]));
    let location = page["location"].as_str().unwrap();
    assert!(
        !location.contains("key="),
        "the key stays out of the address bar: {location}"
    );
    assert_eq!(
        seen["foreign_requests"],
        serde_json::json!([]),
        "no CDN, no other origin"
    );
    assert_eq!(seen["console_errors"], serde_json::json!([]));

    // The totals, as shown.
    let t = |id: &str| {
        page["totals"][id]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {page}"))
    };
    let api_totals = &api["totals"];
    assert_eq!(t("total-requests"), total.requests.to_string());
    assert_eq!(t("total-errors"), total.errors.to_string());
    assert_eq!(
        t("total-cost"),
        format!("${}", api_totals["cost_usd"].as_str().unwrap())
    );
    assert_eq!(money(t("total-cost")), total.cost);
    assert_eq!(money(t("total-savings")), total.savings);
    assert!(total.savings > Decimal::ZERO);
    assert_eq!(money(t("total-counterfactual")), total.counterfactual);
    assert_eq!(t("reference-route"), "big");
    assert_eq!(t("total-escalation-share"), share_text(&total));
    assert_eq!(t("total-escalations"), total.escalations.to_string());
    assert_eq!(t("total-routed"), total.routed.to_string());
    assert_eq!(t("total-input-tokens"), total.input_tokens.to_string());
    assert_eq!(t("total-output-tokens"), total.output_tokens.to_string());
    assert_ms(t("total-p50-latency"), total.p50_latency, "p50 latency");
    assert_ms(t("total-p95-latency"), total.p95_latency, "p95 latency");
    assert_ms(t("total-p50-ttft"), total.p50_ttft, "p50 ttft");

    // One table row per route of the ledger, each figure equal.
    let shown: BTreeMap<String, &Value> = page["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["route-name"].as_str().unwrap().to_owned(), r))
        .collect();
    let names = |k: &Option<String>| k.clone().unwrap_or_else(|| "(none)".into());
    let want: BTreeSet<String> = routes.keys().map(names).collect();
    assert_eq!(shown.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (key, e) in &routes {
        let name = names(key);
        let row = shown[&name];
        let cell = |id: &str| row[id].as_str().unwrap();
        assert_eq!(cell("route-requests"), e.requests.to_string(), "{name}");
        assert_eq!(cell("route-errors"), e.errors.to_string(), "{name}");
        assert_eq!(money(cell("route-cost")), e.cost, "{name}");
        assert_eq!(money(cell("route-savings")), e.savings, "{name}");
        assert_eq!(cell("route-escalation-share"), share_text(e), "{name}");
        assert_ms(cell("route-p50-latency"), e.p50_latency, &name);
        assert_ms(cell("route-p95-latency"), e.p95_latency, &name);
        assert_ms(cell("route-p50-ttft"), e.p50_ttft, &name);
        assert_ms(cell("route-p95-ttft"), e.p95_ttft, &name);
        assert_eq!(
            cell("route-input-tokens"),
            e.input_tokens.to_string(),
            "{name}"
        );
    }

    // One row per class the classifier gave (and `(none)`), each figure equal.
    let by_class = Expected::by_class(&rows, "big");
    let shown: BTreeMap<String, &Value> = page["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["class-name"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(
        shown.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["(none)".to_owned(), "billing".into(), "greeting".into()])
    );
    for (key, e) in &by_class {
        let name = names(key);
        let row = shown[&name];
        let cell = |id: &str| row[id].as_str().unwrap();
        assert_eq!(cell("class-requests"), e.requests.to_string(), "{name}");
        assert_eq!(cell("class-errors"), e.errors.to_string(), "{name}");
        assert_eq!(money(cell("class-cost")), e.cost, "{name}");
        assert_eq!(money(cell("class-savings")), e.savings, "{name}");
        assert_eq!(cell("class-escalation-share"), share_text(e), "{name}");
        assert_ms(cell("class-p50-latency"), e.p50_latency, &name);
        assert_eq!(
            cell("class-input-tokens"),
            e.input_tokens.to_string(),
            "{name}"
        );
    }

    // Five charts, one line per route; the plotted requests and costs add up per route.
    let charts = page["charts"].as_array().unwrap();
    let ids: Vec<&str> = charts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "chart-requests",
            "chart-cost",
            "chart-p50-latency",
            "chart-p95-latency",
            "chart-p50-ttft"
        ]
    );
    let buckets = api["series"].as_array().unwrap().len() / routes.len();
    for chart in charts {
        let lines = chart["lines"].as_array().unwrap();
        assert_eq!(lines.len(), routes.len(), "{chart}");
        for line in lines {
            let route = line["route"].as_str().unwrap();
            let key = (route != "(none)").then(|| route.to_owned());
            let e = &routes[&key];
            let sum = line["sum"].as_f64().unwrap();
            let points = line["points"].as_u64().unwrap() as usize;
            match chart["id"].as_str().unwrap() {
                "chart-requests" => {
                    assert_eq!(sum, e.requests as f64, "{route}");
                    assert_eq!(points, buckets, "every bucket is plotted");
                    assert!(line["d"].as_str().unwrap().starts_with('M'));
                }
                "chart-cost" => {
                    let cost: f64 = e.cost.to_string().parse().unwrap();
                    assert_close(Some(sum), Some(cost), route);
                }
                "chart-p50-ttft" if e.p50_ttft.is_none() => assert_eq!(points, 0, "{route}"),
                _ => assert!(points >= 1, "{chart}"),
            }
        }
    }

    // The window switch asks for the 7d figures: the same traffic.
    let later = &seen["after_7d"];
    assert_eq!(later["state"], "ready");
    assert_eq!(later["window"], "7d");
    assert_eq!(later["pressed"], serde_json::json!(["7d"]));
    assert!(later["location"].as_str().unwrap().contains("window=7d"));
    assert_eq!(
        later["totals"]["total-requests"],
        total.requests.to_string()
    );
    assert_eq!(
        money(later["totals"]["total-cost"].as_str().unwrap()),
        total.cost
    );

    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "screenshot of {} bytes: blank page?",
        png.len()
    );
    // The browser's requests were not traffic.
    assert_eq!(traffic.ledger_rows().await.len(), traffic.requests_sent);
}
