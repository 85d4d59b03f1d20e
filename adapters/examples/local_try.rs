#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant};
use switchyard_adapters::local::{LocalBackend, LocalOptions};
use switchyard_adapters::ChatBackend;
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut o = LocalOptions::new("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if args.get(2).is_some_and(|a| a == "stored") {
        o.weights = switchyard_adapters::local::WeightFormat::AsStored;
    }
    let b = LocalBackend::new(o).unwrap();
    let t = Instant::now();
    b.wait_ready(Duration::from_secs(100)).unwrap();
    println!("ready in {:?}", t.elapsed());
    let req: switchyard_adapters::wire::ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": args.get(1).cloned().unwrap_or("What is the capital of France?".into())}],
        "temperature": 0, "max_tokens": 40})).unwrap();
    let p = b.prepare(&req).unwrap();
    println!("prompt {:?}", p.prompt);
    let t = Instant::now();
    let r = b.complete(req).await.unwrap();
    println!(
        "{:?} in {:?}",
        serde_json::to_string(&r).unwrap(),
        t.elapsed()
    );
}
