//! For the dashboard tests: a gateway with three priced routes and an admin key, real traffic
//! through it, and the figures worked out straight from the ledger rows (independently of
//! the gateway's own usage code, so the two can be compared).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{json, Value};
use sluicegate_gateway::ledger::{LedgerRow, Store};
use sluicegate_gateway::usage::Decimal;

use crate::policy::{openai_backend, routing};
use crate::{http_client, FakeUpstream, Gateway};

/// The admin key the test gateway requires.
pub const ADMIN_KEY: &str = "test-admin-key-0123";

/// A gateway with routes `small` (cheap), `big` (the reference route) and `bad` (always
/// 502), after traffic: 6 + 3 streamed requests to `small`, 2 to `big`, 2 to `bad` and one
/// body that is not JSON. The real on-box classifier classifies each request: the `big` ones
/// ask for a refund (class `billing`), the others greet (`greeting`), the bad body has none.
#[derive(Debug)]
pub struct Traffic {
    pub gateway: Gateway,
    pub upstream: FakeUpstream,
    /// The ledger's SQLite file.
    pub db: PathBuf,
    /// The policy file (for `sluicegate report --config`).
    pub policy: PathBuf,
    pub requests_sent: usize,
}

fn priced_route(name: &str, input: &str, output: &str) -> String {
    format!(
        "[routes.{name}]\nbackend = \"{name}\"\nprice = {{ input = \"{input}\", output = \"{output}\" }}\n\n"
    )
}

/// Starts the gateway, sends the traffic and waits until the ledger holds every row.
pub async fn start_with_traffic() -> Traffic {
    let upstream = FakeUpstream::start_default().await;
    let dir = crate::temp_dir();
    let db = dir.join("ledger.sqlite");
    let url = upstream.openai_url();
    let mut toml = String::from("[server]\nadmin_key_env = \"SLUICEGATE_ADMIN_KEY\"\n\n");
    toml.push_str(&openai_backend("small", &url, "fx-chat-ok", ""));
    toml.push_str(&openai_backend("big", &url, "fx-chat-ok", ""));
    toml.push_str(&openai_backend("bad", &url, "fx-error-500", ""));
    toml.push_str(&priced_route("small", "0.15", "0.60"));
    toml.push_str(&priced_route("big", "2.50", "10.00"));
    toml.push_str(&priced_route("bad", "1", "1"));
    toml.push_str(&format!(
        "[classifier]\nencoder = \"{}\"\non_classifier_error = \"small\"\ntimeout = \"5s\"\n\n\
         [classes.greeting]\nexamples = [\"hello\", \"hi there, how are you?\"]\n\n\
         [classes.billing]\nexamples = [\"refund my last payment\", \"I was charged twice\"]\n\n",
        crate::minilm_dir().display()
    ));
    toml.push_str(&routing("small", ""));
    toml.push_str(&format!(
        "[ledger]\nurl = \"{}\"\nreference_route = \"big\"\n",
        db.display()
    ));
    let policy = crate::gateway::write_policy(&dir, &toml);
    let gateway = Gateway::start(&toml, &[("SLUICEGATE_ADMIN_KEY", ADMIN_KEY)]).await;
    let chat = format!("{}/v1/chat/completions", gateway.url());
    let client = http_client();
    // The classifier loads in the background; until then requests would get no class.
    gateway.wait_ready(Duration::from_secs(60)).await;
    let body = |model: &str, stream: bool| {
        let text = if model == "big" {
            "please refund my last payment"
        } else {
            "hello there"
        };
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
    };
    let plan = [
        ("small", false, 6, 200),
        ("small", true, 3, 200),
        ("big", false, 2, 200),
        ("bad", false, 2, 502),
    ];
    let mut sent = 0;
    for (model, stream, n, status) in plan {
        for _ in 0..n {
            let r = client
                .post(&chat)
                .json(&body(model, stream))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{model}");
            r.bytes().await.unwrap();
            sent += 1;
        }
    }
    let r = client.post(&chat).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    sent += 1;
    let traffic = Traffic {
        gateway,
        upstream,
        db,
        policy,
        requests_sent: sent,
    };
    let rows = traffic.ledger_rows().await;
    assert_eq!(rows.len(), sent);
    let count = |class: Option<&str>| rows.iter().filter(|r| r.class.as_deref() == class).count();
    assert_eq!(
        (count(Some("greeting")), count(Some("billing")), count(None)),
        (11, 2, 1),
        "the classes recorded: {rows:?}"
    );
    traffic
}

impl Traffic {
    /// Every ledger row, read from the SQLite file; waits (10s at most) until the writer has
    /// stored a row for every request sent.
    pub async fn ledger_rows(&self) -> Vec<LedgerRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(store) = Store::open_read_only(self.db.to_str().unwrap()).await {
                if let Ok(rows) = store.rows_since(0).await {
                    if rows.len() >= self.requests_sent {
                        return rows;
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the ledger did not get {} rows within 10s",
                self.requests_sent
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /api/usage?window=WINDOW` with the admin key; panics unless 200.
    pub async fn usage(&self, window: &str) -> Value {
        let r = http_client()
            .get(format!("{}/api/usage?window={window}", self.gateway.url()))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// The figures of some rows, computed here from the raw rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub requests: u64,
    pub errors: u64,
    pub routed: u64,
    pub escalations: u64,
    pub cost: Decimal,
    pub counterfactual: Decimal,
    pub savings: Decimal,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub p50_latency: Option<f64>,
    pub p95_latency: Option<f64>,
    pub p50_ttft: Option<f64>,
    pub p95_ttft: Option<f64>,
}

/// The nearest-rank percentile by its definition, counting (not the gateway's rank arithmetic):
/// the smallest of the values with at least `p`% of them at or below it.
fn nearest_rank(values: Vec<f64>, p: f64) -> Option<f64> {
    let n = values.len() as f64;
    values
        .iter()
        .copied()
        .filter(|x| values.iter().filter(|v| *v <= x).count() as f64 * 100.0 >= p * n)
        .min_by(f64::total_cmp)
}

impl Expected {
    /// Figures of `rows`; requests on `reference` are escalations.
    pub fn of(rows: &[&LedgerRow], reference: &str) -> Expected {
        let zero = Decimal::ZERO;
        let cost: Decimal = rows.iter().map(|r| r.cost_usd.unwrap_or(zero)).sum();
        let counterfactual: Decimal = rows
            .iter()
            .map(|r| r.counterfactual_cost_usd.or(r.cost_usd).unwrap_or(zero))
            .sum();
        Expected {
            requests: rows.len() as u64,
            errors: rows.iter().filter(|r| r.status >= 400).count() as u64,
            routed: rows.iter().filter(|r| r.route.is_some()).count() as u64,
            escalations: rows
                .iter()
                .filter(|r| r.route.as_deref() == Some(reference))
                .count() as u64,
            cost,
            counterfactual,
            savings: counterfactual - cost,
            input_tokens: rows
                .iter()
                .filter_map(|r| r.input_tokens)
                .map(u64::from)
                .sum(),
            output_tokens: rows
                .iter()
                .filter_map(|r| r.output_tokens)
                .map(u64::from)
                .sum(),
            p50_latency: nearest_rank(rows.iter().map(|r| r.latency_ms).collect(), 50.0),
            p95_latency: nearest_rank(rows.iter().map(|r| r.latency_ms).collect(), 95.0),
            p50_ttft: nearest_rank(rows.iter().filter_map(|r| r.ttft_ms).collect(), 50.0),
            p95_ttft: nearest_rank(rows.iter().filter_map(|r| r.ttft_ms).collect(), 95.0),
        }
    }

    /// The figures of all rows, and of each route (`None`: requests that got no route).
    pub fn by_route(
        rows: &[LedgerRow],
        reference: &str,
    ) -> (Expected, BTreeMap<Option<String>, Expected>) {
        let all: Vec<&LedgerRow> = rows.iter().collect();
        let mut groups: BTreeMap<Option<String>, Vec<&LedgerRow>> = BTreeMap::new();
        for r in rows {
            groups.entry(r.route.clone()).or_default().push(r);
        }
        let groups = groups
            .into_iter()
            .map(|(k, rows)| (k, Expected::of(&rows, reference)))
            .collect();
        (Expected::of(&all, reference), groups)
    }

    /// The expected figures per class (`None`: not classified), from the rows' `class`.
    pub fn by_class(rows: &[LedgerRow], reference: &str) -> BTreeMap<Option<String>, Expected> {
        let mut groups: BTreeMap<Option<String>, Vec<&LedgerRow>> = BTreeMap::new();
        for r in rows {
            groups.entry(r.class.clone()).or_default().push(r);
        }
        groups
            .into_iter()
            .map(|(k, rows)| (k, Expected::of(&rows, reference)))
            .collect()
    }

    /// Asserts that a `/api/usage` (or report) stats object holds exactly these figures.
    pub fn assert_matches(&self, got: &Value, what: &str) {
        let dec = |key: &str| {
            let text = got[key]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: {key} is not a decimal string: {got}"));
            Decimal::from_str(text).unwrap()
        };
        let int = |key: &str| got[key].as_u64().unwrap_or_else(|| panic!("{what}.{key}"));
        assert_eq!(int("requests"), self.requests, "{what}: requests");
        assert_eq!(int("errors"), self.errors, "{what}: errors");
        assert_eq!(int("routed"), self.routed, "{what}: routed");
        assert_eq!(int("escalations"), self.escalations, "{what}: escalations");
        assert_eq!(dec("cost_usd"), self.cost, "{what}: cost");
        assert_eq!(
            dec("counterfactual_cost_usd"),
            self.counterfactual,
            "{what}: counterfactual"
        );
        assert_eq!(dec("savings_usd"), self.savings, "{what}: savings");
        assert_eq!(int("input_tokens"), self.input_tokens, "{what}: input");
        assert_eq!(int("output_tokens"), self.output_tokens, "{what}: output");
        for (key, want) in [
            ("p50_latency_ms", self.p50_latency),
            ("p95_latency_ms", self.p95_latency),
            ("p50_ttft_ms", self.p50_ttft),
            ("p95_ttft_ms", self.p95_ttft),
        ] {
            assert_close(got[key].as_f64(), want, &format!("{what}: {key}"));
        }
        let share = (self.routed > 0).then(|| self.escalations as f64 / self.routed as f64);
        assert_close(
            got["escalation_share"].as_f64(),
            share,
            &format!("{what}: share"),
        );
    }
}

/// Equal up to the last bit or so: serde_json's default float parser may be one ULP off.
pub fn assert_close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "{what}: got {g}, want {w}"
        ),
        _ => assert_eq!(got, want, "{what}"),
    }
}
