//! Anthropic Messages response → OpenAI `chat.completion`.

use serde_json::json;

use sluicegate_wire::anthropic::{finish_reason, MessagesResponse, MessagesUsage, ResponseBlock};
use sluicegate_wire::{
    unix_now, ChatCompletion, Choice, Content, Extra, FunctionCall, Message, Role, ToolCall, Usage,
};

/// One choice: the text blocks concatenated, `tool_use` blocks as tool calls.
pub fn to_chat_completion(response: MessagesResponse) -> ChatCompletion {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            ResponseBlock::Other => {}
        }
    }
    // OpenAI sends `content: null` on a turn that only calls tools.
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(Content::Text(text));
    let message = Message {
        role: Role::Assistant,
        content,
        name: None,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        tool_call_id: None,
        extra: Extra::new(),
    };
    ChatCompletion {
        id: response.id,
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: response.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: response
                .stop_reason
                .as_deref()
                .map(|r| finish_reason(r).to_owned()),
            logprobs: None,
            extra: Extra::new(),
        }],
        usage: Some(to_usage(&response.usage)),
        extra: Extra::new(),
    }
}

/// OpenAI usage: every input token (cache writes and reads included) is a prompt token;
/// cache reads are also reported as `prompt_tokens_details.cached_tokens`.
pub fn to_usage(usage: &MessagesUsage) -> Usage {
    let mut out = Usage::new(usage.prompt_tokens(), usage.output_tokens.unwrap_or(0));
    if let Some(cached) = usage.cache_read_input_tokens.filter(|c| *c > 0) {
        out.extra.insert(
            "prompt_tokens_details".to_owned(),
            json!({ "cached_tokens": cached }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn complete(body: Value) -> ChatCompletion {
        to_chat_completion(serde_json::from_value(body).unwrap())
    }

    fn reply(content: Value, stop_reason: &str) -> Value {
        json!({
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 6}
        })
    }

    #[test]
    fn text_blocks_are_concatenated() {
        let before = unix_now();
        let out = complete(reply(
            json!([{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world."}]),
            "end_turn",
        ));
        assert_eq!(out.id, "msg_01");
        assert_eq!(out.object, "chat.completion");
        assert_eq!(out.model, "claude-sonnet-4-5-20250929");
        assert!(out.created >= before);
        assert_eq!(out.choices.len(), 1);
        let choice = &out.choices[0];
        assert_eq!(choice.message.role, Role::Assistant);
        assert_eq!(
            choice.message.content,
            Some(Content::Text("Hello, world.".into()))
        );
        assert_eq!(choice.message.tool_calls, None);
        assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
        assert_eq!(out.usage, Some(Usage::new(12, 6)));
    }

    #[test]
    fn tool_use_blocks_become_tool_calls() {
        let out = complete(reply(
            json!([
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather",
                 "input": {"city": "Paris", "days": 2}}
            ]),
            "tool_use",
        ));
        let choice = &out.choices[0];
        assert_eq!(choice.message.content, None);
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        let calls = choice.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, "toolu_1");
        assert_eq!(calls[0].kind, "function");
        assert_eq!(calls[0].function.name, "weather");
        let args: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
        assert_eq!(args, json!({"city": "Paris", "days": 2}));
        // Serialised the OpenAI way.
        let wire = serde_json::to_value(&out).unwrap();
        assert_eq!(
            wire["choices"][0]["message"]["tool_calls"][0]["type"],
            "function"
        );
    }

    #[test]
    fn each_stop_reason_maps_to_a_finish_reason() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            let out = complete(reply(json!([{"type": "text", "text": "x"}]), stop));
            assert_eq!(
                out.choices[0].finish_reason.as_deref(),
                Some(finish),
                "{stop}"
            );
        }
    }

    #[test]
    fn usage_counts_cache_tokens_as_prompt_tokens() {
        let mut body = reply(json!([{"type": "text", "text": "x"}]), "end_turn");
        body["usage"] = json!({
            "input_tokens": 10,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 5
        });
        let usage = complete(body).usage.unwrap();
        assert_eq!(usage.prompt_tokens, 1110);
        assert_eq!(usage.completion_tokens, 5);
        assert_eq!(usage.total_tokens, 1115);
        assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 1000);
    }
}
