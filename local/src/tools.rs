//! Tool calls on local models: which `tool_choice` the engine can honour ([`mode`]), and the
//! model's tool-call output turned into OpenAI `tool_calls` ([`parse`], and [`Splitter`] for
//! streams), in the format the model's own chat template teaches it ([`Format::detect`]):
//! Hermes/Qwen `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, or Llama 3's
//! bare JSON object `{"name": ..., "parameters": {...}}`.
//!
//! A call is only a call when it is well formed: valid JSON, a `name` among the request's
//! tools and an object of arguments. Anything else stays text, so malformed output is never
//! passed off as a call. `tool_choice` `"required"` or a named function constrains the output
//! ([`grammar`]) to one call in the model's format, to any of the tools or to the named one,
//! with a JSON object of arguments (not checked against the tool's schema); a model whose
//! template renders no tools answers `"auto"` in text and refuses those with a 400.

use serde_json::Value;

use sluicegate_wire::{
    BackendError, Delta, FunctionCall, FunctionCallDelta, Message, Role, Tool, ToolCall,
    ToolCallDelta,
};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// How a model writes its tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<tool_call>` JSON blocks (Hermes, Qwen2.5, Qwen3, SmolLM3).
    Hermes,
    /// The whole answer one JSON object with `name` and `parameters` (Llama 3.1+).
    Llama3Json,
}

impl Format {
    /// The format a chat template teaches, if it renders tools at all.
    pub fn detect(template: &str) -> Option<Format> {
        if !template.contains("tools") {
            return None;
        }
        if template.contains(OPEN) {
            Some(Format::Hermes)
        } else if template.contains("<|python_tag|>") || template.contains("\"parameters\"") {
            Some(Format::Llama3Json)
        } else {
            None
        }
    }
}

/// What a request asks of the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// No tools, or `tool_choice: "none"`: the tools are not rendered and nothing is parsed.
    Off,
    /// The model may call tools: they are rendered and its output is parsed.
    Auto(Format),
    /// The model must call one of the tools (`"required"`): its output is constrained.
    Required(Format),
    /// The model must call this function: its output is constrained.
    Named(Format, String),
}

impl Mode {
    /// The format the output is parsed in, unless tools are off.
    pub fn format(&self) -> Option<Format> {
        match self {
            Mode::Off => None,
            Mode::Auto(f) | Mode::Required(f) | Mode::Named(f, _) => Some(*f),
        }
    }
}

fn refuse(message: String, code: &str) -> BackendError {
    BackendError::Upstream {
        status: 400,
        retry_after: None,
        message,
        code: Some(code.into()),
    }
}

/// The mode for `tools` and `tool_choice` on a model whose template writes `format`.
pub fn mode(
    tools: Option<&[Tool]>,
    choice: Option<&Value>,
    format: Option<Format>,
) -> Result<Mode, BackendError> {
    let tools = tools.unwrap_or_default();
    let forced = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "none" => return Ok(Mode::Off),
        Some(Value::String(s)) if s == "auto" => None,
        Some(Value::String(s)) if s == "required" => Some(None),
        Some(v) if v.get("type").and_then(Value::as_str) == Some("function") => {
            match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => Some(Some(name.to_owned())),
                None => {
                    return Err(refuse(
                        format!("tool_choice {v} names no function"),
                        "invalid_tool_choice",
                    ))
                }
            }
        }
        Some(other) => {
            return Err(refuse(
                format!(
                    "tool_choice {other} is not supported: send \"none\", \"auto\", \
                     \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                ),
                "unsupported_tool_choice",
            ))
        }
    };
    let Some(forced) = forced else {
        // A template that renders no tools cannot show them to the model: under "auto" it
        // answers in text, as a model that chose not to call one would.
        return Ok(match format {
            Some(f) if !tools.is_empty() => Mode::Auto(f),
            _ => Mode::Off,
        });
    };
    if tools.is_empty() {
        return Err(refuse(
            "tool_choice asks for a call but the request has no tools".into(),
            "invalid_tool_choice",
        ));
    }
    let Some(format) = format else {
        return Err(refuse(
            "tool_choice asks for a call but this local model's chat template renders no \
             tools; send \"auto\" or \"none\", or route the request to a model that calls tools"
                .into(),
            "unsupported_tool_choice",
        ));
    };
    Ok(match forced {
        None => Mode::Required(format),
        Some(name) if tools.iter().any(|t| t.function.name == name) => Mode::Named(format, name),
        Some(name) => {
            return Err(refuse(
                format!("tool_choice names function {name:?}, which is not among the tools"),
                "invalid_tool_choice",
            ))
        }
    })
}

/// A call when `json` is one: an object with a known `name` and an object of arguments
/// (under `arguments`, or `parameters` for Llama 3).
fn call(json: &str, tools: &[Tool], tag: &str, n: usize) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(json.trim()).ok()?;
    let name = v.get("name")?.as_str()?;
    if !tools.iter().any(|t| t.function.name == name) {
        return None;
    }
    let args = v.get("arguments").or_else(|| v.get("parameters"))?;
    if !args.is_object() {
        return None;
    }
    Some(ToolCall {
        id: format!("call_{tag}_{n}"),
        kind: "function".into(),
        function: FunctionCall {
            name: name.to_owned(),
            arguments: args.to_string(),
        },
    })
}

/// The text outside the calls (`None` when only whitespace) and the calls in `text`; call ids
/// are `call_{tag}_{n}` (`tag` unique to the answer, `n` counting its calls from 0).
pub fn parse(
    text: &str,
    format: Format,
    tools: &[Tool],
    tag: &str,
) -> (Option<String>, Vec<ToolCall>) {
    let mut s = Splitter::new(format, tools.to_vec(), tag);
    let mut pieces = s.push(text);
    pieces.extend(s.finish());
    let mut content = String::new();
    let mut calls = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => content.push_str(&t),
            Piece::Call(_, c) => calls.push(c),
        }
    }
    let content = Some(content).filter(|c| !c.trim().is_empty());
    (content, calls)
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// A call and its index among the answer's calls.
    Call(usize, ToolCall),
}

/// Splits streamed text into text and calls, holding back only what could still become a call:
/// for Hermes, a tail that may be the start of `<tool_call>` and an open block until it closes;
/// for Llama 3, an answer that starts with `{` (or the Python tag) until it ends.
#[derive(Debug)]
pub struct Splitter {
    format: Format,
    tools: Vec<Tool>,
    held: String,
    /// Inside a `<tool_call>` block (Hermes).
    open: bool,
    /// Text has been released (Llama 3: the answer is not a call).
    released: bool,
    calls: usize,
    tag: String,
}

impl Splitter {
    /// A splitter for one answer; `tag` makes its call ids unique (see [`parse`]).
    pub fn new(format: Format, tools: Vec<Tool>, tag: &str) -> Self {
        Splitter {
            format,
            tools,
            held: String::new(),
            open: false,
            released: false,
            calls: 0,
            tag: tag.to_owned(),
        }
    }

    /// `json` as the answer's next call, if it is one.
    fn next_call(&mut self, json: &str) -> Option<Piece> {
        let c = call(json, &self.tools, &self.tag, self.calls)?;
        self.calls += 1;
        Some(Piece::Call(self.calls - 1, c))
    }

    fn text(&mut self, out: &mut Vec<Piece>, t: &str) {
        if !t.is_empty() {
            self.released = true;
            out.push(Piece::Text(t.to_owned()));
        }
    }

    /// Takes the next text; returns what can be released.
    pub fn push(&mut self, t: &str) -> Vec<Piece> {
        self.held.push_str(t);
        let mut out = Vec::new();
        match self.format {
            Format::Hermes => loop {
                if self.open {
                    let Some(end) = self.held.find(CLOSE) else {
                        break;
                    };
                    let block: String = self.held.drain(..end + CLOSE.len()).collect();
                    self.open = false;
                    let json = &block[..block.len() - CLOSE.len()];
                    match self.next_call(json) {
                        Some(c) => out.push(c),
                        None => self.text(&mut out, &format!("{OPEN}{block}")),
                    }
                    continue;
                }
                if let Some(start) = self.held.find(OPEN) {
                    let before: String = self.held.drain(..start + OPEN.len()).collect();
                    self.text(&mut out, &before[..start]);
                    self.open = true;
                    continue;
                }
                // Release all but a tail that could begin `<tool_call>`.
                let keep = (1..OPEN.len())
                    .rev()
                    .find(|k| self.held.ends_with(&OPEN[..*k]))
                    .unwrap_or(0);
                let cut = self.held.len() - keep;
                let released: String = self.held.drain(..cut).collect();
                self.text(&mut out, &released);
                break;
            },
            Format::Llama3Json => {
                let lead = self.held.trim_start();
                let may_be_call = lead.is_empty()
                    || lead.starts_with('{')
                    || "<|python_tag|>".starts_with(lead)
                    || lead.starts_with("<|python_tag|>");
                if self.released || !may_be_call {
                    let all = std::mem::take(&mut self.held);
                    self.text(&mut out, &all);
                }
            }
        }
        out
    }

    /// The end of the answer: what is still held, as a call if it is one, else as text.
    pub fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match self.format {
            Format::Hermes if self.open => self.text(&mut out, &format!("{OPEN}{held}")),
            Format::Hermes => self.text(&mut out, &held),
            Format::Llama3Json => {
                let json = held.trim_start().trim_start_matches("<|python_tag|>");
                let json = json.to_owned();
                match (!self.released).then(|| self.next_call(&json)).flatten() {
                    Some(c) => out.push(c),
                    None => self.text(&mut out, &held),
                }
            }
        }
        out
    }

    /// Calls found so far.
    pub fn calls(&self) -> usize {
        self.calls
    }
}

/// The assistant's message for `text` under `mode`, and whether it holds calls.
pub fn message(text: String, mode: &Mode, tools: &[Tool], tag: &str) -> (Message, bool) {
    let Some(format) = mode.format() else {
        return (Message::text(Role::Assistant, text), false);
    };
    let (content, calls) = parse(&text, format, tools, tag);
    let mut m = Message::text(Role::Assistant, content.unwrap_or_default());
    if calls.is_empty() {
        return (m, false);
    }
    if m.content.as_ref().is_some_and(|c| c.as_text().is_empty()) {
        m.content = None;
    }
    m.tool_calls = Some(calls);
    (m, true)
}

/// A streamed piece as a chunk's delta, as OpenAI streams it (a call whole, in one delta with
/// its index among the answer's calls, id, type, name and arguments).
pub fn delta(piece: Piece) -> Delta {
    match piece {
        Piece::Text(t) => Delta {
            content: Some(t),
            ..Delta::default()
        },
        Piece::Call(index, c) => {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: Some(c.id),
                    kind: Some(c.kind),
                    function: Some(FunctionCallDelta {
                        name: Some(c.function.name),
                        arguments: Some(c.function.arguments),
                    }),
                }]),
                ..Delta::default()
            }
        }
    }
}

mod forced;
#[cfg(test)]
mod tests;
