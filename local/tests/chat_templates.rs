//! Real chat templates of the model families a company fine-tunes, as their GGUF files carry
//! them (llama.cpp's copies in `models/llama-vocab/templates/`, fetched by
//! `scripts/fetch-models` from the `llama-cpp-python` source distribution), rendered by the
//! engine's `ChatTemplate` (minijinja): the exact prompt for the families whose format is
//! fixed, and for each, that the conversation and the assistant's turn opening are there and
//! that function tools reach the prompt where the template renders them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::json;
use sluicegate_local::template::ChatTemplate;
use sluicegate_wire::{Message, Role};

fn template(name: &str) -> String {
    let models = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let path = models
        .join("llama-vocab/templates")
        .join(format!("{name}.jinja"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-models", path.display()))
}

fn conversation(system: bool) -> Vec<Message> {
    let mut m = Vec::new();
    if system {
        m.push(Message::text(Role::System, "Be brief."));
    }
    m.push(Message::text(Role::User, "What is 2+2?"));
    m
}

fn render(name: &str, bos: &str, eos: &str, system: bool) -> String {
    let t = ChatTemplate::new(Some(&template(name)), Some(bos), Some(eos))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    t.render(&conversation(system), None, None)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn qwen2_5_renders_chatml_without_its_default_system_prompt() {
    let name = "Qwen-Qwen2.5-7B-Instruct";
    let (bos, eos) = ("", "<|im_end|>");
    assert_eq!(
        render(name, bos, eos, true),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    assert_eq!(
        render(name, bos, eos, false),
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn qwen3_renders_chatml() {
    let out = render("Qwen-Qwen3-0.6B", "", "<|im_end|>", true);
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

#[test]
fn llama_3_1_renders_its_headers() {
    let out = render(
        "meta-llama-Llama-3.1-8B-Instruct",
        "<|begin_of_text|>",
        "<|eot_id|>",
        true,
    );
    assert_eq!(
        out,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: \
         December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user\
         <|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn every_family_renders_the_conversation_and_opens_the_answer() {
    // (template, BOS, EOS, the assistant turn's opening)
    let families = [
        (
            "Qwen-Qwen2.5-7B-Instruct",
            "",
            "<|im_end|>",
            "<|im_start|>assistant\n",
        ),
        (
            "Qwen-Qwen3-0.6B",
            "",
            "<|im_end|>",
            "<|im_start|>assistant\n",
        ),
        (
            "HuggingFaceTB-SmolLM3-3B",
            "",
            "<|im_end|>",
            "<|im_start|>assistant\n",
        ),
        (
            "meta-llama-Llama-3.2-3B-Instruct",
            "<|begin_of_text|>",
            "<|eot_id|>",
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (
            "microsoft-Phi-3.5-mini-instruct",
            "<s>",
            "<|endoftext|>",
            "<|assistant|>\n",
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407",
            "<s>",
            "</s>",
            "[/INST]",
        ),
        (
            "google-gemma-2-2b-it",
            "<bos>",
            "<eos>",
            "<start_of_turn>model\n",
        ),
    ];
    let mut failed = Vec::new();
    for (name, bos, eos, opening) in families {
        for system in [true, false] {
            let t = ChatTemplate::new(Some(&template(name)), Some(bos), Some(eos)).unwrap();
            match t.render(&conversation(system), None, None) {
                Ok(out) if out.contains("What is 2+2?") && out.ends_with(opening) => {
                    println!("{name} (system: {system}): {out:?}");
                }
                Ok(out) => failed.push(format!("{name} (system: {system}): {out:?}")),
                Err(e) => failed.push(format!("{name} (system: {system}): {e}")),
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn tools_reach_the_prompt_in_the_templates_that_take_them() {
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }}]);
    for (name, bos, eos) in [
        ("Qwen-Qwen2.5-7B-Instruct", "", "<|im_end|>"),
        ("Qwen-Qwen3-0.6B", "", "<|im_end|>"),
        (
            "meta-llama-Llama-3.1-8B-Instruct",
            "<|begin_of_text|>",
            "<|eot_id|>",
        ),
    ] {
        let t = ChatTemplate::new(Some(&template(name)), Some(bos), Some(eos)).unwrap();
        let out = t.render(&conversation(false), None, Some(&tools)).unwrap();
        assert!(
            out.contains("get_weather") && out.contains("The weather in a city"),
            "{name}: {out}"
        );
        assert!(out.contains("What is 2+2?"), "{name}: {out}");
    }
}

#[test]
fn a_template_without_a_system_role_gets_it_in_the_first_user_turn() {
    // Gemma's template raises on a system message.
    let out = render("google-gemma-2-2b-it", "<bos>", "<eos>", true);
    assert_eq!(
        out,
        "<bos><start_of_turn>user\nBe brief.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"
    );
}
