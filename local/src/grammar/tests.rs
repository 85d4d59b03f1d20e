#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::TestRng;

/// A byte-level vocabulary: every single byte, a few longer pieces, a control token (id 0).
fn vocab() -> Pieces {
    let mut v: Vec<Option<Box<[u8]>>> = vec![None];
    v.extend((0..=255u8).map(|b| Some(Box::from([b]))));
    for s in [
        "<tool_call>",
        "\n{\"",
        "name",
        "\": \"",
        "get",
        "_weather",
        "\", \"",
        "arguments",
        "\": {",
        "city",
        "Paris",
        "\"}",
        "}\n",
        "</tool_call>",
        "{\"",
        "\"",
        " ",
        "12",
        "true",
        "]}",
        "[",
        "null",
        ", \"",
        "\":",
        "\\",
        "\\u",
        "00e9",
        "é",
    ] {
        v.push(Some(s.as_bytes().into()));
    }
    v.into()
}

fn hermes(names: &[&str]) -> Grammar {
    let g = Grammar::new(vec![
        Segment::Lit(b"<tool_call>\n{\"name\": \"".to_vec()),
        Segment::OneOf(names.iter().map(|n| n.as_bytes().to_vec()).collect()),
        Segment::Lit(b"\", \"arguments\": ".to_vec()),
        Segment::Object,
        Segment::Lit(b"}\n</tool_call>".to_vec()),
    ]);
    g.forbidding("</tool_call>")
}

/// Greedy decoding of random logits under the grammar, at most `max` tokens: the text and
/// whether the grammar completed.
fn decode(g: &Grammar, seed: u64, max: usize) -> (String, bool) {
    let p = vocab();
    let mut c = Constraint::new(Arc::new(g.clone()), p.clone());
    let mut rng = TestRng::new(seed);
    let mut out = Vec::new();
    for made in 0..max {
        let mut logits: Vec<f32> = (0..p.len()).map(|_| rng.f() * 4.0).collect();
        let kept = c.mask(&mut logits, max - made);
        assert!(kept > 0 && kept <= KEEP, "kept {kept}");
        let finite = logits.iter().filter(|l| l.is_finite()).count();
        assert_eq!(finite, kept);
        let id = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap();
        assert!(c.accept(id), "token {id} was allowed but not accepted");
        out.extend_from_slice(p.get(id).unwrap());
        if c.done() {
            return (String::from_utf8_lossy(&out).into_owned(), true);
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

#[test]
fn random_logits_under_the_grammar_always_make_a_well_formed_call() {
    let g = hermes(&["get_weather", "get_time"]);
    for seed in 0..200 {
        let (text, done) = decode(&g, seed, 60);
        assert!(done, "seed {seed}: not complete in 60 tokens: {text:?}");
        let tools: Vec<sluicegate_wire::Tool> = ["get_weather", "get_time"]
            .iter()
            .map(|n| {
                serde_json::from_value(serde_json::json!({
                    "type": "function", "function": {"name": n, "parameters": {}}
                }))
                .unwrap()
            })
            .collect();
        let (rest, calls) = crate::tools::parse(&text, crate::tools::Format::Hermes, &tools, "t");
        assert_eq!(calls.len(), 1, "seed {seed}: {text:?}");
        assert!(rest.is_none(), "seed {seed}: {text:?}");
        let args: serde_json::Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
        assert!(args.is_object());
    }
}

#[test]
fn a_tight_budget_still_completes_when_it_can() {
    let g = hermes(&["get_weather"]);
    // The shortest call: the literals, the name and `{}`.
    let least = g.start().distance(&g);
    assert_eq!(
        least,
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>".len()
    );
    // In tokens of this vocabulary, fewer: the literals have pieces of several bytes.
    let tokens = Constraint::new(Arc::new(g.clone()), vocab()).distance();
    println!("the shortest call: {least} bytes, {tokens} tokens");
    assert!(tokens < least / 2, "{tokens}");
    for seed in 0..100 {
        let (text, done) = decode(&g, seed, tokens);
        assert!(done, "seed {seed}: {text:?}");
    }
}

#[test]
fn too_small_a_budget_still_follows_the_grammar_and_is_cut_off() {
    let g = hermes(&["get_weather"]);
    for seed in 0..20 {
        let (text, done) = decode(&g, seed, 5);
        assert!(!done, "{text:?}");
        let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ";
        assert!(
            call.starts_with(&text) || text.starts_with(call),
            "{text:?}"
        );
    }
}

#[test]
fn the_closing_tag_cannot_appear_inside_the_arguments() {
    let g = hermes(&["f"]);
    let mut st = g.start();
    assert!(st.feed_all(
        &g,
        b"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"</tool_call"
    ));
    assert!(!st.clone().feed(&g, b'>'));
    assert!(st.feed_all(&g, b"s\"}}\n</tool_call>") && st.done(&g));
}

#[test]
fn a_choice_may_be_a_prefix_of_another() {
    let g = Grammar::new(vec![
        Segment::OneOf(vec![b"get".to_vec(), b"get_weather".to_vec()]),
        Segment::Lit(b"\"".to_vec()),
    ]);
    for (s, ok, done) in [
        ("get\"", true, true),
        ("get_weather\"", true, true),
        ("get_\"", false, false),
        ("gex", false, false),
        ("get", true, false),
    ] {
        let mut st = g.start();
        assert_eq!(st.feed_all(&g, s.as_bytes()), ok, "{s}");
        if ok {
            assert_eq!(st.done(&g), done, "{s}");
        }
    }
}

#[test]
fn control_tokens_and_bytes_outside_the_grammar_are_masked() {
    let g = hermes(&["get_weather"]);
    let p = vocab();
    let mut c = Constraint::new(Arc::new(g), p.clone());
    let mut logits = vec![0.0; p.len()];
    // The control token is the model's favourite; only `<` and `<tool_call>` can start.
    logits[0] = 10.0;
    assert_eq!(c.mask(&mut logits, 100), 2);
    assert_eq!(logits[0], f32::NEG_INFINITY);
    let allowed: Vec<&[u8]> = (0..p.len() as u32)
        .filter(|i| logits[*i as usize].is_finite())
        .map(|i| p.get(i).unwrap())
        .collect();
    assert_eq!(allowed, vec![&b"<"[..], &b"<tool_call>"[..]]);
}
