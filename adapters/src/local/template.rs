//! The chat template from the GGUF file (`tokenizer.chat_template`), rendered with minijinja the
//! way Hugging Face renders it: `trim_blocks`, `lstrip_blocks`, Python string methods
//! (`.strip()`, ...), `raise_exception`, and the variables `messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token` and `tools`.
//!
//! A conversation without a system message is rendered as it is: if the template injects a
//! default system prompt (SmolLM2's does), the model sees it, exactly as llama.cpp and
//! `transformers` would render it. A backend's `system_prompt` setting, when given, is inserted
//! as the system message of conversations that have none, before rendering.

use minijinja::{Environment, ErrorKind, Value};
use serde::Serialize;

use super::LocalError;
use crate::wire::{Message, Role};

/// ChatML, used when a GGUF file carries no template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + \
message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}\
{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

#[derive(Debug, Serialize)]
struct TemplateMessage {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool | Role::Function => "tool",
    }
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source` (ChatML when `None`).
    pub fn new(
        source: Option<&str>,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, LocalError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_owned())
            .map_err(|e| LocalError::Model(format!("chat template: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.unwrap_or_default().to_owned(),
            eos_token: eos_token.unwrap_or_default().to_owned(),
        })
    }

    /// The prompt for `messages`, ending with the assistant's turn opening.
    pub fn render(
        &self,
        messages: &[Message],
        system_prompt: Option<&str>,
        tools: Option<&serde_json::Value>,
    ) -> Result<String, LocalError> {
        let mut list: Vec<TemplateMessage> = Vec::with_capacity(messages.len() + 1);
        let has_system = messages
            .iter()
            .any(|m| matches!(m.role, Role::System | Role::Developer));
        if let (Some(prompt), false) = (system_prompt, has_system) {
            list.push(TemplateMessage {
                role: "system",
                content: prompt.to_owned(),
                tool_calls: None,
                tool_call_id: None,
                name: None,
            });
        }
        for m in messages {
            list.push(TemplateMessage {
                role: role_name(m.role),
                content: m.content.as_ref().map(|c| c.as_text()).unwrap_or_default(),
                tool_calls: m
                    .tool_calls
                    .as_ref()
                    .and_then(|t| serde_json::to_value(t).ok()),
                tool_call_id: m.tool_call_id.clone(),
                name: m.name.clone(),
            });
        }
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LocalError::Model(format!("chat template: {e}")))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(&list),
            add_generation_prompt => true,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools.map(Value::from_serialize),
        };
        template
            .render(ctx)
            .map_err(|e| LocalError::Template(format!("chat template failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOL: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn user(text: &str) -> Message {
        Message::text(Role::User, text)
    }

    #[test]
    fn renders_the_template_as_written() {
        let t = ChatTemplate::new(Some(SMOL), None, None).unwrap();
        let out = t.render(&[user("Hi")], None, None).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let with_system = [Message::text(Role::System, "Be brief."), user("Hi")];
        let out = t.render(&with_system, None, None).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        // A configured system prompt replaces the template's default, never the client's.
        let out = t.render(&[user("Hi")], Some("Answer."), None).unwrap();
        assert!(out.starts_with("<|im_start|>system\nAnswer.<|im_end|>\n"));
        let out = t.render(&with_system, Some("Answer."), None).unwrap();
        assert!(out.starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}[{{ m.content.strip() }}]{% endfor %}";
        let t = ChatTemplate::new(Some(src), None, None).unwrap();
        assert_eq!(t.render(&[user("  x \n")], None, None).unwrap(), "[x]");
        let tool = Message::text(Role::Tool, "42");
        let err = t.render(&[tool], None, None).unwrap_err();
        assert!(err.to_string().contains("no tools"), "{err}");
        assert!(ChatTemplate::new(Some("{% if %}"), None, None).is_err());
    }

    #[test]
    fn chatml_is_the_fallback() {
        let t = ChatTemplate::new(None, None, None).unwrap();
        assert_eq!(
            t.render(&[user("a")], None, None).unwrap(),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
