//! The grammar of a forced call ([`Mode::grammar`]), in the model's own format.

use sluicegate_wire::Tool;

use super::{Format, Mode, CLOSE};
use crate::grammar::{Grammar, Segment};

impl Mode {
    /// The grammar the output must follow, for `Required` and `Named`: one call in the
    /// model's format, `"name"` first, then an object of arguments.
    pub fn grammar(&self, tools: &[Tool]) -> Option<Grammar> {
        let (format, names): (Format, Vec<&str>) = match self {
            Mode::Off | Mode::Auto(_) => return None,
            Mode::Required(f) => (*f, tools.iter().map(|t| t.function.name.as_str()).collect()),
            Mode::Named(f, name) => (*f, vec![name.as_str()]),
        };
        // A name as it is written inside a JSON string.
        let quoted = |n: &str| {
            let q = serde_json::to_string(n).unwrap_or_default();
            let inner = q.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
            inner.unwrap_or(n).as_bytes().to_vec()
        };
        let names = Segment::OneOf(names.into_iter().map(quoted).collect());
        let lit = |s: &str| Segment::Lit(s.as_bytes().to_vec());
        let g = Grammar::new(match format {
            Format::Hermes => vec![
                lit("<tool_call>\n{\"name\": \""),
                names,
                lit("\", \"arguments\": "),
                Segment::Object,
                lit("}\n</tool_call>"),
            ],
            Format::Llama3Json => vec![
                lit("{\"name\": \""),
                names,
                lit("\", \"parameters\": "),
                Segment::Object,
                lit("}"),
            ],
        });
        Some(match format {
            Format::Hermes => g.forbidding(CLOSE),
            Format::Llama3Json => g,
        })
    }
}
