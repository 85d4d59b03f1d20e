//! The chat template from the GGUF file (`tokenizer.chat_template`), rendered with minijinja the
//! way Hugging Face renders it: `trim_blocks`, `lstrip_blocks`, Python string methods
//! (`.strip()`, ...), `raise_exception`, and the variables `messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token` and `tools`.
//!
//! A conversation without a system message gets no system turn. Some templates insert a
//! default system prompt then (SmolLM2's: "You are a helpful AI assistant named SmolLM, ..."),
//! with which small models answer noticeably worse; sluicegate leaves it out, as llama.cpp's
//! built-in ChatML formatting does. It renders the conversation behind a marker system message
//! and cuts that turn off again (keeping a leading BOS), so the template still does all the
//! formatting; a template that does not render turn by turn is used as written instead. A
//! backend's `system_prompt` setting, when given, becomes the system message of conversations
//! that have none.

use minijinja::{Environment, ErrorKind, Value};
use serde::Serialize;

use sluicegate_wire::{Message, Role};

use crate::LocalError;

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

#[derive(Debug, Clone, Serialize)]
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
        let mut list: Vec<TemplateMessage> = messages.iter().map(TemplateMessage::from).collect();
        let has_system = messages
            .iter()
            .any(|m| matches!(m.role, Role::System | Role::Developer));
        if has_system {
            return self.render_with_system(list, tools);
        }
        if let Some(prompt) = system_prompt {
            list.insert(0, TemplateMessage::system(prompt));
            return self.render_with_system(list, tools);
        }
        // Tools are rendered into the system turn by the templates that take them: that turn
        // is not cut off then.
        if tools.is_some() {
            return self.render_list(&list, true, tools);
        }
        // No system message: keep the template from inserting a default one.
        const MARK: &str = "\u{1}sluicegate-system-turn\u{1}";
        let marked: Vec<TemplateMessage> = std::iter::once(TemplateMessage::system(MARK))
            .chain(list.iter().cloned())
            .collect();
        let turn = self.render_list(&marked[..1], false, tools);
        let full = self.render_list(&marked, true, tools);
        if let (Ok(turn), Ok(full)) = (turn, full) {
            if let Some(rest) = full
                .strip_prefix(turn.as_str())
                .filter(|_| turn.contains(MARK))
            {
                let bos = self.bos_token.as_str();
                let lead = if !bos.is_empty() && turn.starts_with(bos) {
                    bos
                } else {
                    ""
                };
                return Ok(format!("{lead}{rest}"));
            }
        }
        self.render_list(&list, true, tools)
    }

    /// Renders a conversation with system messages; a template without a system role (Gemma's
    /// raises on one) gets them folded into the first user message instead, as
    /// `"{system}\n\n{user}"`.
    fn render_with_system(
        &self,
        list: Vec<TemplateMessage>,
        tools: Option<&serde_json::Value>,
    ) -> Result<String, LocalError> {
        let err = match self.render_list(&list, true, tools) {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        let (system, mut rest): (Vec<_>, Vec<_>) =
            list.into_iter().partition(|m| m.role == "system");
        let text: Vec<&str> = system.iter().map(|m| m.content.as_str()).collect();
        match rest.iter_mut().find(|m| m.role == "user") {
            Some(first) => first.content = format!("{}\n\n{}", text.join("\n\n"), first.content),
            None => return Err(err),
        }
        self.render_list(&rest, true, tools).map_err(|_| err)
    }

    fn render_list(
        &self,
        list: &[TemplateMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String, LocalError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LocalError::Model(format!("chat template: {e}")))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(list),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools.map(Value::from_serialize),
        };
        template
            .render(ctx)
            .map_err(|e| LocalError::Template(format!("chat template failed: {e}")))
    }
}

impl TemplateMessage {
    fn system(content: &str) -> Self {
        TemplateMessage {
            role: "system",
            content: content.to_owned(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
}

impl From<&Message> for TemplateMessage {
    fn from(m: &Message) -> Self {
        TemplateMessage {
            role: role_name(m.role),
            content: m.content.as_ref().map(|c| c.as_text()).unwrap_or_default(),
            tool_calls: m
                .tool_calls
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
            tool_call_id: m.tool_call_id.clone(),
            name: m.name.clone(),
        }
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
        // No system message: no system turn, not the template's default one.
        let out = t.render(&[user("Hi")], None, None).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
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
    fn a_leading_bos_is_kept_and_odd_templates_are_used_as_written() {
        let llama3 = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
        let t = ChatTemplate::new(Some(llama3), Some("<s>"), None).unwrap();
        assert_eq!(
            t.render(&[user("Hi")], None, None).unwrap(),
            "<s><user>Hi</user><assistant>"
        );
        // A template that refuses a lone system message still renders the conversation.
        let strict = "{% if messages[-1].role == 'system' %}{{ raise_exception('no') }}{% endif %}{% for m in messages %}[{{ m.content }}]{% endfor %}";
        let t = ChatTemplate::new(Some(strict), None, None).unwrap();
        assert_eq!(t.render(&[user("Hi")], None, None).unwrap(), "[Hi]");
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
