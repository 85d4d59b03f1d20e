//! Policy snippets, so each test's policy reads as what it is about.

/// `[backends.NAME]` of kind `openai`; `extra` holds more `key = value` lines.
pub fn openai_backend(name: &str, base_url: &str, model: &str, extra: &str) -> String {
    format!(
        "[backends.{name}]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"{model}\"\n{extra}\n\n"
    )
}

/// `[backends.NAME]` of kind `anthropic`; `extra` holds more `key = value` lines.
pub fn anthropic_backend(name: &str, base_url: &str, model: &str, extra: &str) -> String {
    format!(
        "[backends.{name}]\nkind = \"anthropic\"\nbase_url = \"{base_url}\"\nmodel = \"{model}\"\n{extra}\n\n"
    )
}

/// `[routes.NAME]` served by `backend`, falling back to `fallback` in order.
pub fn route(name: &str, backend: &str, fallback: &[&str]) -> String {
    let list: Vec<String> = fallback.iter().map(|f| format!("{f:?}")).collect();
    format!(
        "[routes.{name}]\nbackend = \"{backend}\"\nprice = {{ input = \"0.15\", output = \"0.60\" }}\nfallback = [{}]\n\n",
        list.join(", ")
    )
}

/// The `[policy]` table; `extra` holds more lines (e.g. `rules = [...]`).
pub fn routing(default: &str, extra: &str) -> String {
    format!("[policy]\ndefault = \"{default}\"\n{extra}\n")
}

/// One OpenAI backend and one route, both named `main`, asking `base_url` for `model`.
pub fn single_openai(base_url: &str, model: &str, backend_extra: &str) -> String {
    let mut toml = openai_backend("main", base_url, model, backend_extra);
    toml.push_str(&route("main", "main", &[]));
    toml.push_str(&routing("main", ""));
    toml
}

/// One Anthropic backend and one route, both named `claude`.
pub fn single_anthropic(base_url: &str, model: &str, backend_extra: &str) -> String {
    let mut toml = anthropic_backend("claude", base_url, model, backend_extra);
    toml.push_str(&route("claude", "claude", &[]));
    toml.push_str(&routing("claude", ""));
    toml
}
