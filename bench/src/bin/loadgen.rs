//! An open-loop load generator: sends POSTs at a fixed rate whatever the server does, and
//! measures each latency from the moment the request was *due* (no coordinated omission).
//! Prints one line: `sent ok errors p50_us p90_us p99_us max_us`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// Full URL to POST to.
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// JSON body.
    #[arg(long)]
    body: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .build()?;
    let total = args.rate * args.seconds;
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = Arc::new(args.body);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url, body) = (client.clone(), args.url.clone(), body.clone());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let sent = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.as_str().to_owned())
                .send()
                .await;
            let ok = match sent {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                latencies.lock().await.push(due.elapsed());
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut l = latencies.lock().await.clone();
    l.sort();
    let pct = |p: f64| -> u128 {
        if l.is_empty() {
            return 0;
        }
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i].as_micros()
    };
    println!(
        "sent={total} ok={} errors={} p50_us={} p90_us={} p99_us={} max_us={}",
        l.len(),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
