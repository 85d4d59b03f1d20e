//! OpenAI chat request → Anthropic Messages request.

use serde_json::{json, Value};

use sluicegate_wire::anthropic::{
    ImageSource, MessageParam, MessageRole, MessagesRequest, RequestBlock, ToolChoice, ToolParam,
};
use sluicegate_wire::BackendError;
use sluicegate_wire::{ChatRequest, Content, ContentPart, Message, Role, Tool};

/// Builds the Messages request for `model`; `default_max_tokens` applies when the client set
/// no output cap (Anthropic requires one).
pub fn to_messages_request(
    request: ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<MessagesRequest, BackendError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(invalid(
            "n > 1 is not supported: Anthropic returns one choice per request",
            "n",
        ));
    }
    log_dropped_fields(&request);
    let (system, messages) = convert_messages(&request.messages)?;
    let tools = convert_tools(request.tools.as_deref())?;
    let mut tool_choice = match &request.tool_choice {
        Some(choice) => Some(convert_tool_choice(choice)?),
        None => None,
    };
    if tools.is_none() {
        // Anthropic refuses a tool_choice without tools; without tools there is no choice.
        tool_choice = None;
    } else if request.extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = tool_choice.get_or_insert_with(|| ToolChoice::of("auto"));
        if choice.kind != "none" {
            choice.disable_parallel_tool_use = Some(true);
        }
    }
    let stop_sequences = request
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .filter(|v| !v.is_empty());
    Ok(MessagesRequest {
        model: model.to_owned(),
        max_tokens: request.max_output_tokens().unwrap_or(default_max_tokens),
        messages,
        system,
        stop_sequences,
        temperature: request.temperature,
        top_p: request.top_p,
        tools,
        tool_choice,
        stream: None,
    })
}

fn invalid(message: impl Into<String>, param: impl Into<String>) -> BackendError {
    BackendError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

/// Fields the Messages API cannot express are dropped, not refused.
fn log_dropped_fields(request: &ChatRequest) {
    let mut dropped: Vec<&str> = Vec::new();
    if request.seed.is_some() {
        dropped.push("seed");
    }
    if request.response_format.is_some() {
        dropped.push("response_format");
    }
    dropped.extend(
        request
            .extra
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "parallel_tool_calls"),
    );
    if !dropped.is_empty() {
        tracing::debug!(
            fields = ?dropped,
            "dropping request fields the Anthropic Messages API cannot express"
        );
    }
}

/// The joined system prompt and the user/assistant turns, same-role turns merged.
fn convert_messages(
    messages: &[Message],
) -> Result<(Option<String>, Vec<MessageParam>), BackendError> {
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<MessageParam> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let (role, blocks) = match message.role {
            Role::System | Role::Developer => {
                if let Some(content) = &message.content {
                    let text = content.as_text();
                    if !text.trim().is_empty() {
                        system.push(text);
                    }
                }
                continue;
            }
            Role::User => (MessageRole::User, content_blocks(message, i)?),
            Role::Assistant => (MessageRole::Assistant, assistant_blocks(message, i)?),
            Role::Tool => (MessageRole::User, vec![tool_result(message, i)?]),
            Role::Function => return Err(invalid(
                "role \"function\" is not supported by the Anthropic backend; use tool messages",
                format!("messages[{i}].role"),
            )),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(MessageParam {
                role,
                content: blocks,
            }),
        }
    }
    match out.first() {
        None => Err(invalid(
            "the conversation has no user message; Anthropic requires one after the system prompt",
            "messages",
        )),
        Some(first) if first.role != MessageRole::User => Err(invalid(
            "Anthropic requires the conversation to start with a user message after the system prompt",
            "messages",
        )),
        Some(_) => {
            let system = (!system.is_empty()).then(|| system.join("\n\n"));
            Ok((system, out))
        }
    }
}

/// Text and image blocks of a user or assistant message; empty texts are left out
/// (Anthropic refuses empty text blocks).
fn content_blocks(message: &Message, i: usize) -> Result<Vec<RequestBlock>, BackendError> {
    let mut blocks = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) => push_text(&mut blocks, text),
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                blocks.extend(part_block(part, i, j)?);
            }
        }
    }
    Ok(blocks)
}

fn push_text(blocks: &mut Vec<RequestBlock>, text: &str) {
    if !text.is_empty() {
        blocks.push(RequestBlock::Text {
            text: text.to_owned(),
        });
    }
}

fn part_block(
    part: &ContentPart,
    i: usize,
    j: usize,
) -> Result<Option<RequestBlock>, BackendError> {
    match part.kind.as_str() {
        "text" => Ok(part
            .text
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| RequestBlock::Text { text: t.to_owned() })),
        "image_url" => {
            let param = format!("messages[{i}].content[{j}].image_url.url");
            let url = part
                .extra
                .get("image_url")
                .and_then(|v| v.get("url"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("image_url part without a url", param.clone()))?;
            Ok(Some(RequestBlock::Image {
                source: image_source(url, &param)?,
            }))
        }
        other => Err(invalid(
            format!("content part type \"{other}\" is not supported by the Anthropic backend"),
            format!("messages[{i}].content[{j}].type"),
        )),
    }
}

/// `data:<media type>;base64,<data>` or an http(s) URL.
fn image_source(url: &str, param: &str) -> Result<ImageSource, BackendError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid("malformed data URL", param))?;
        let media_type = meta
            .strip_suffix(";base64")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                invalid(
                    "image data URLs must be base64 with a media type (data:image/png;base64,...)",
                    param,
                )
            })?;
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    }
    Err(invalid(
        "image URLs must be http(s) or base64 data URLs",
        param,
    ))
}

/// The assistant's text followed by one `tool_use` block per tool call.
fn assistant_blocks(message: &Message, i: usize) -> Result<Vec<RequestBlock>, BackendError> {
    let mut blocks = content_blocks(message, i)?;
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let arguments = call.function.arguments.trim();
        let input: Value = if arguments.is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments).map_err(|e| {
                invalid(
                    format!("tool call arguments are not valid JSON: {e}"),
                    format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )
            })?
        };
        blocks.push(RequestBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        });
    }
    Ok(blocks)
}

fn tool_result(message: &Message, i: usize) -> Result<RequestBlock, BackendError> {
    let tool_use_id = message
        .tool_call_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            invalid(
                "tool messages need a tool_call_id",
                format!("messages[{i}].tool_call_id"),
            )
        })?;
    Ok(RequestBlock::ToolResult {
        tool_use_id,
        content: message
            .content
            .as_ref()
            .map(Content::as_text)
            .unwrap_or_default(),
    })
}

fn convert_tools(tools: Option<&[Tool]>) -> Result<Option<Vec<ToolParam>>, BackendError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(invalid(
                format!(
                    "tool type \"{}\" is not supported by the Anthropic backend",
                    tool.kind
                ),
                format!("tools[{k}].type"),
            ));
        }
        out.push(ToolParam {
            name: tool.function.name.clone(),
            description: tool.function.description.clone(),
            input_schema: tool
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    Ok(Some(out))
}

fn convert_tool_choice(choice: &Value) -> Result<ToolChoice, BackendError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::of("auto")),
            "required" => Ok(ToolChoice::of("any")),
            "none" => Ok(ToolChoice::of("none")),
            other => Err(invalid(
                format!("unknown tool_choice \"{other}\""),
                "tool_choice",
            )),
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.function.name is missing", "tool_choice"))?;
            Ok(ToolChoice {
                name: Some(name.to_owned()),
                ..ToolChoice::of("tool")
            })
        }
        _ => Err(invalid(
            "tool_choice must be \"auto\", \"required\", \"none\" or a function choice",
            "tool_choice",
        )),
    }
}

#[cfg(test)]
mod tests;
