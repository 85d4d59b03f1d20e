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
    let m = |choice: Option<serde_json::Value>, format| mode(Some(&t), choice.as_ref(), format);
    assert_eq!(m(None, hermes).unwrap(), Mode::Auto(Format::Hermes));
    assert_eq!(
        m(Some(json!("auto")), hermes).unwrap(),
        Mode::Auto(Format::Hermes)
    );
    assert_eq!(m(Some(json!("none")), hermes).unwrap(), Mode::Off);
    assert_eq!(mode(None, None, None).unwrap(), Mode::Off);
    assert_eq!(
        m(Some(json!("required")), hermes).unwrap(),
        Mode::Required(Format::Hermes)
    );
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    assert_eq!(
        m(Some(named.clone()), hermes).unwrap(),
        Mode::Named(Format::Hermes, "get_weather".into())
    );
    let refused = |r: Result<Mode, BackendError>| match r {
        Err(BackendError::Upstream { status, code, .. }) => (status, code.unwrap_or_default()),
        other => panic!("not refused: {other:?}"),
    };
    let unknown = json!({"type": "function", "function": {"name": "get_time"}});
    assert_eq!(
        refused(m(Some(unknown), hermes)),
        (400, "invalid_tool_choice".into())
    );
    assert_eq!(
        refused(mode(None, Some(&json!("required")), hermes)),
        (400, "invalid_tool_choice".into())
    );
    assert_eq!(
        refused(m(Some(json!("sometimes")), hermes)),
        (400, "unsupported_tool_choice".into())
    );
    // A template without tools: answered in text under "auto", refused when a call is required.
    assert_eq!(m(None, None).unwrap(), Mode::Off);
    for choice in [json!("required"), named] {
        assert_eq!(
            refused(m(Some(choice), None)),
            (400, "unsupported_tool_choice".into())
        );
    }
}

#[test]
fn a_forced_call_follows_the_models_own_format() {
    use crate::grammar::Grammar;
    let t = tools();
    let complete = |g: &Grammar, s: &str| {
        let mut st = g.start();
        st.feed_all(g, s.as_bytes()) && st.done(g)
    };
    let hermes = Mode::Required(Format::Hermes).grammar(&t).unwrap();
    let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    assert!(complete(&hermes, call));
    let (_, calls) = parse(call, Format::Hermes, &t, "t");
    assert_eq!(calls.len(), 1);
    assert!(!complete(&hermes, &call.replace("get_weather", "get_time")));
    let llama = Mode::Named(Format::Llama3Json, "get_weather".into())
        .grammar(&t)
        .unwrap();
    let call = r#"{"name": "get_weather", "parameters": {"city": "Paris"}}"#;
    assert!(complete(&llama, call));
    assert_eq!(parse(call, Format::Llama3Json, &t, "t").1.len(), 1);
    assert!(Mode::Auto(Format::Hermes).grammar(&t).is_none());
    assert!(Mode::Off.grammar(&t).is_none());
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
