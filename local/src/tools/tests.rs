use serde_json::json;

use super::*;

fn tools() -> Vec<Tool> {
    serde_json::from_value(json!([{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }}]))
    .unwrap()
}

const CALL: &str = r#"<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call>"#;

#[test]
fn a_hermes_block_is_a_call_and_the_rest_is_text() {
    let (content, calls) = parse(
        &format!("Let me check.\n{CALL}"),
        Format::Hermes,
        &tools(),
        "t",
    );
    assert_eq!(content.as_deref(), Some("Let me check.\n"));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(calls[0].id, "call_t_0");
}

#[test]
fn malformed_or_unknown_calls_stay_text() {
    for bad in [
        "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": </tool_call>",
        "<tool_call>{\"name\": \"delete_all\", \"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"get_weather\", \"arguments\": \"Paris\"}</tool_call>",
        "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}",
    ] {
        let (content, calls) = parse(bad, Format::Hermes, &tools(), "t");
        assert!(calls.is_empty(), "{bad}");
        assert_eq!(content.as_deref(), Some(bad));
    }
}

#[test]
fn a_stream_split_anywhere_gives_the_same_pieces() {
    let text = format!("Sure <b>. {CALL} and {CALL}");
    let (content, calls) = parse(&text, Format::Hermes, &tools(), "t");
    for step in [1, 2, 3, 5, 7, 11] {
        let mut s = Splitter::new(Format::Hermes, tools(), "t");
        let mut pieces = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(step) {
            pieces.extend(s.push(&chunk.iter().collect::<String>()));
        }
        pieces.extend(s.finish());
        let got_text: String = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                Piece::Call(..) => None,
            })
            .collect();
        let got_calls: Vec<&ToolCall> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Call(_, c) => Some(c),
                Piece::Text(_) => None,
            })
            .collect();
        assert_eq!(Some(got_text.as_str()), content.as_deref(), "step {step}");
        assert_eq!(got_calls.len(), 2, "step {step}");
        assert_eq!(got_calls[1].id, "call_t_1");
        assert_eq!(calls.len(), 2);
    }
}

#[test]
fn text_is_released_as_it_comes_except_a_possible_tag() {
    let mut s = Splitter::new(Format::Hermes, tools(), "t");
    assert_eq!(s.push("Hello wor"), vec![Piece::Text("Hello wor".into())]);
    // "<tool" might open a call: held back until it cannot.
    assert_eq!(s.push("ld <tool"), vec![Piece::Text("ld ".into())]);
    assert_eq!(s.push("bar"), vec![Piece::Text("<toolbar".into())]);
}

#[test]
fn llama3_json_is_a_call_only_when_it_is_the_whole_answer() {
    let t = tools();
    let (content, calls) = parse(
        r#"{"name": "get_weather", "parameters": {"city": "Oslo"}}"#,
        Format::Llama3Json,
        &t,
        "t",
    );
    assert_eq!(content, None);
    assert_eq!(calls[0].function.arguments, r#"{"city":"Oslo"}"#);
    let (content, calls) = parse(
        r#"<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}"#,
        Format::Llama3Json,
        &t,
        "t",
    );
    assert!(content.is_none() && calls.len() == 1);
    let prose = r#"The call would be {"name": "get_weather", "parameters": {}}"#;
    let (content, calls) = parse(prose, Format::Llama3Json, &t, "t");
    assert!(calls.is_empty());
    assert_eq!(content.as_deref(), Some(prose));
}

#[test]
fn tool_choice_is_honoured_or_refused() {
    let t = tools();
    let hermes = Some(Format::Hermes);
    assert_eq!(
        mode(Some(&t), None, hermes).unwrap(),
        Mode::Auto(Format::Hermes)
    );
    assert_eq!(
        mode(Some(&t), Some(&json!("auto")), hermes).unwrap(),
        Mode::Auto(Format::Hermes)
    );
    assert_eq!(
        mode(Some(&t), Some(&json!("none")), hermes).unwrap(),
        Mode::Off
    );
    assert_eq!(mode(None, None, None).unwrap(), Mode::Off);
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let Err(BackendError::Upstream { status, code, .. }) =
            mode(Some(&t), Some(&choice), hermes)
        else {
            panic!("{choice} was not refused");
        };
        assert_eq!(
            (status, code.as_deref()),
            (400, Some("unsupported_tool_choice"))
        );
    }
    // A template without tools: answered in text under "auto", refused when a call is required.
    assert_eq!(mode(Some(&t), None, None).unwrap(), Mode::Off);
    assert!(mode(Some(&t), Some(&json!("required")), None).is_err());
}

#[test]
fn formats_are_detected_from_real_templates() {
    let dir = crate::testing::ggufs::models_dir().join("llama-vocab/templates");
    let read = |n: &str| {
        let p = dir.join(format!("{n}.jinja"));
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-models", p.display()))
    };
    assert_eq!(
        Format::detect(&read("Qwen-Qwen2.5-7B-Instruct")),
        Some(Format::Hermes)
    );
    assert_eq!(
        Format::detect(&read("Qwen-Qwen3-0.6B")),
        Some(Format::Hermes)
    );
    assert_eq!(
        Format::detect(&read("meta-llama-Llama-3.1-8B-Instruct")),
        Some(Format::Llama3Json)
    );
    assert_eq!(Format::detect(&read("google-gemma-2-2b-it")), None);
}
