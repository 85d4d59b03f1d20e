use eventsource_stream::Eventsource;
use futures::StreamExt;

use super::chunks_from_events;
use sluicegate_wire::BackendError;
use sluicegate_wire::{ChatCompletionChunk, Role};

/// Parses an SSE transcript the way the backend reads the wire, and runs the state machine.
async fn run(transcript: &str) -> Vec<Result<ChatCompletionChunk, BackendError>> {
    // Split into small pieces so events straddle reads, as they do on the network.
    let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = transcript
        .as_bytes()
        .chunks(37)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let events = futures::stream::iter(pieces)
        .eventsource()
        .map(|e| e.map_err(|e| BackendError::Protocol(e.to_string())))
        .boxed();
    chunks_from_events(events, None).collect().await
}

fn ok(items: Vec<Result<ChatCompletionChunk, BackendError>>) -> Vec<ChatCompletionChunk> {
    items.into_iter().map(Result::unwrap).collect()
}

const TEXT_REPLY: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01ABC","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: some_future_event
data: {"type":"some_future_event","detail":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[tokio::test]
async fn a_text_reply_streams_role_content_finish_and_usage() {
    let chunks = ok(run(TEXT_REPLY).await);
    assert_eq!(chunks.len(), 5, "{chunks:#?}");
    for c in &chunks {
        assert_eq!(c.id, "msg_01ABC");
        assert_eq!(c.model, "claude-sonnet-4-5-20250929");
        assert_eq!(c.object, "chat.completion.chunk");
    }
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hello"));
    assert_eq!(
        chunks[2].choices[0].delta.content.as_deref(),
        Some(", world!")
    );
    let finish = &chunks[3].choices[0];
    assert_eq!(finish.finish_reason.as_deref(), Some("stop"));
    assert_eq!(finish.delta.content, None);
    assert_eq!(finish.delta.role, None);
    assert!(chunks[3].usage.is_none());
    let last = &chunks[4];
    assert!(last.is_usage_only());
    let usage = last.usage.as_ref().unwrap();
    assert_eq!(usage.prompt_tokens, 125);
    assert_eq!(usage.completion_tokens, 15);
    assert_eq!(usage.total_tokens, 140);
}

const TOOL_REPLY: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_tool","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":400,"output_tokens":2}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Let me check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_A","name":"weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_B","name":"time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[tokio::test]
async fn a_tool_call_reply_streams_tool_call_deltas() {
    let chunks = ok(run(TOOL_REPLY).await);
    assert_eq!(chunks.len(), 9, "{chunks:#?}");
    assert_eq!(
        chunks[1].choices[0].delta.content.as_deref(),
        Some("Let me check.")
    );

    let calls = |i: usize| chunks[i].choices[0].delta.tool_calls.clone().unwrap();
    let first = &calls(2)[0];
    assert_eq!(first.index, 0);
    assert_eq!(first.id.as_deref(), Some("toolu_A"));
    assert_eq!(first.kind.as_deref(), Some("function"));
    let function = first.function.as_ref().unwrap();
    assert_eq!(function.name.as_deref(), Some("weather"));
    assert_eq!(function.arguments.as_deref(), Some(""));

    // The empty partial is skipped; the two real partials follow, without id or name.
    let mut arguments = String::new();
    for i in [3, 4] {
        let call = &calls(i)[0];
        assert_eq!(call.index, 0);
        assert_eq!(call.id, None);
        let function = call.function.as_ref().unwrap();
        assert_eq!(function.name, None);
        arguments.push_str(function.arguments.as_deref().unwrap());
    }
    assert_eq!(arguments, r#"{"city": "Paris"}"#);

    // Block 2 is the second tool call: OpenAI index 1.
    let second = &calls(5)[0];
    assert_eq!(second.index, 1);
    assert_eq!(second.id.as_deref(), Some("toolu_B"));
    assert_eq!(calls(6)[0].index, 1);

    let finish = &chunks[7].choices[0];
    assert_eq!(finish.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(finish.delta.tool_calls, None);
    let usage = chunks[8].usage.as_ref().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (400, 89));
}

#[tokio::test]
async fn an_error_event_becomes_a_typed_upstream_error() {
    let transcript = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_e","type":"message","role":"assistant","content":[],"model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"never seen"}}

"#;
    let items = run(transcript).await;
    assert_eq!(items.len(), 2, "the stream stops at the error: {items:#?}");
    assert!(items[0].is_ok());
    match &items[1] {
        Err(
            e @ BackendError::Upstream {
                status,
                message,
                code,
                ..
            },
        ) => {
            assert_eq!(*status, 503);
            assert_eq!(message, "Overloaded");
            assert_eq!(code.as_deref(), Some("overloaded_error"));
            assert!(e.is_retryable());
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

#[tokio::test]
async fn error_types_map_to_statuses() {
    for (kind, status) in [
        ("rate_limit_error", 429),
        ("overloaded_error", 503),
        ("api_error", 500),
        ("invalid_request_error", 502),
    ] {
        let transcript = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":\"m\"}}}}\n\n"
        );
        let items = run(&transcript).await;
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0], Err(BackendError::Upstream { status: s, .. }) if *s == status),
            "{kind}: {items:?}"
        );
    }
}

#[tokio::test]
async fn a_cut_off_stream_is_a_protocol_error() {
    // Everything up to (but not including) message_delta and message_stop.
    let cut = TEXT_REPLY
        .split("event: message_delta")
        .next()
        .unwrap()
        .to_owned();
    let items = run(&cut).await;
    let (last, rest) = items.split_last().unwrap();
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(Result::is_ok));
    assert_eq!(
        last,
        &Err(BackendError::Protocol(
            "upstream stream ended before message_stop".into()
        ))
    );
}

#[tokio::test]
async fn nothing_is_read_after_message_stop_and_garbage_is_a_protocol_error() {
    let after_stop = format!("{TEXT_REPLY}event: content_block_delta\ndata: {{oops\n\n");
    let items = run(&after_stop).await;
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(Result::is_ok));

    let items = run("event: message_start\ndata: {oops\n\n").await;
    assert!(matches!(&items[..], [Err(BackendError::Protocol(m))] if m.contains("invalid event")));
}
