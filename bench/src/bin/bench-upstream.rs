//! A minimal OpenAI-compatible upstream answering every chat request at once with the same
//! completion, so a benchmark measures the gateway and not a model.

use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Listen address (port 0 picks one; the line `listening on ADDR` tells which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

async fn completion(Json(body): Json<Value>) -> Json<Value> {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new().route("/v1/chat/completions", post(completion));
        axum::serve(listener, app).await?;
        Ok(())
    })
}
