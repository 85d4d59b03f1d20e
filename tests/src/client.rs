//! The client side: requests to the gateway and readers for its answers.

use std::time::Duration;

use serde_json::Value;

use crate::Gateway;

/// A client that never uses a proxy and gives up after 30s.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// The text of `GET /metrics`.
pub async fn metrics_text(gw: &Gateway) -> String {
    http_client()
        .get(format!("{}/metrics", gw.url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the /metrics body")
}

/// Every row of the SQLite ledger at `db`, oldest first (after the gateway has stopped, so
/// that the writer has flushed).
pub async fn ledger_rows(db: &std::path::Path) -> Vec<sluicegate_gateway::ledger::LedgerRow> {
    sluicegate_gateway::ledger::Store::open(db.to_str().expect("a UTF-8 path"))
        .await
        .expect("open the ledger")
        .rows_since(0)
        .await
        .expect("read the ledger")
}

/// `POST /v1/chat/completions` with a JSON body.
pub async fn chat(gw: &Gateway, body: &Value) -> reqwest::Response {
    chat_with(gw, body, &[]).await
}

/// `POST /v1/chat/completions` with a JSON body and extra headers.
pub async fn chat_with(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http_client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("send the chat request")
}

/// A response header as text, or "" when absent.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Checks OpenAI's error shape (`{"error":{"message","type","param","code"}}`) and
/// returns the inner object.
pub fn assert_openai_error(body: &Value) -> &Value {
    let error = &body["error"];
    assert!(error.is_object(), "not an OpenAI error body: {body}");
    let message = error["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "error.message is empty: {body}");
    assert!(
        error["type"].is_string(),
        "error.type is not a string: {body}"
    );
    for key in ["param", "code"] {
        assert!(
            error.as_object().is_some_and(|o| o.contains_key(key)),
            "error.{key} is missing (OpenAI always sends it, null if unset): {body}"
        );
    }
    error
}

/// The `data:` payloads of a server-sent-events body, in order.
#[derive(Debug, Clone)]
pub struct SseFrames {
    pub data: Vec<String>,
}

impl SseFrames {
    /// Parses an SSE transcript: one entry per event that has data.
    pub fn parse(text: &str) -> SseFrames {
        let text = text.replace("\r\n", "\n");
        let data = text
            .split("\n\n")
            .filter_map(|event| {
                let lines: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|l| l.strip_prefix(' ').unwrap_or(l))
                    .collect();
                (!lines.is_empty()).then(|| lines.join("\n"))
            })
            .collect();
        SseFrames { data }
    }

    /// Every frame but `[DONE]`, as JSON.
    pub fn json(&self) -> Vec<Value> {
        self.data
            .iter()
            .filter(|d| d.as_str() != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("frame {d:?}: {e}")))
            .collect()
    }

    /// The concatenated `choices[0].delta.content` of every chunk.
    pub fn text(&self) -> String {
        self.json()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// The last non-null `choices[0].finish_reason`.
    pub fn finish_reason(&self) -> Option<String> {
        self.json()
            .iter()
            .rev()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned))
    }

    /// The frames that carry a non-null `usage`.
    pub fn usage_frames(&self) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
            .collect()
    }
}

/// Reads a whole SSE response body.
pub async fn sse_frames(response: reqwest::Response) -> SseFrames {
    let text = response.text().await.expect("read the SSE body");
    SseFrames::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_are_split_and_joined() {
        let f = SseFrames::parse(": hi\n\nevent: x\ndata: {\"a\":1}\n\ndata:[DONE]\r\n\r\n");
        assert_eq!(f.data, vec!["{\"a\":1}".to_owned(), "[DONE]".to_owned()]);
        assert_eq!(f.json().len(), 1);
    }
}
