//! A byte-at-a-time recogniser of one JSON object ([`Json`]): it accepts a byte only when the
//! bytes so far are still the start of a valid object, and says when the object is closed.
//! Whitespace between tokens is limited to one byte, so a constrained model cannot loop on
//! spaces; nesting is limited to [`MAX_DEPTH`].

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 16;

/// Most digits of a number's integer or fraction part, and of its exponent: what `f64` and
/// every JSON reader take.
const MAX_DIGITS: u8 = 17;
const MAX_EXP_DIGITS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }

    /// The state after `b`, if `b` continues the number; `digits` counts the digits of the
    /// current part.
    fn next(self, b: u8, digits: u8) -> Option<Num> {
        let digit = b.is_ascii_digit();
        let room = digits < MAX_DIGITS;
        Some(match (self, b) {
            (Num::Minus, b'0') => Num::Zero,
            (Num::Minus, _) if digit => Num::Int,
            (Num::Int, _) if digit && room => Num::Int,
            (Num::Zero | Num::Int, b'.') => Num::Dot,
            (Num::Dot, _) if digit => Num::Frac,
            (Num::Frac, _) if digit && room => Num::Frac,
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::E,
            (Num::E, b'+' | b'-') => Num::ESign,
            (Num::E | Num::ESign, _) if digit => Num::Exp,
            (Num::Exp, _) if digit && digits < MAX_EXP_DIGITS => Num::Exp,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the object's `{`.
    Start,
    /// A value is expected (after `:`, or `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,` or the closing bracket.
    After,
    /// In a string; `key` when it is an object key; `esc` counts an escape's bytes still due
    /// (`u8::MAX`: just after the backslash), `utf8` the continuation bytes of a character.
    Str { key: bool, esc: u8, utf8: u8 },
    /// In a number, with the digits of its current part.
    Num(Num, u8),
    /// In `true`, `false` or `null`: the literal and the bytes of it seen.
    Word(&'static [u8], usize),
    /// The object is closed.
    Done,
}

/// The recogniser's state; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json {
    stack: Vec<u8>,
    mode: Mode,
    /// The last byte was whitespace between tokens.
    space: bool,
}

impl Default for Json {
    fn default() -> Self {
        Json {
            stack: Vec::new(),
            mode: Mode::Start,
            space: false,
        }
    }
}

impl Json {
    /// Whether the object is complete.
    pub fn done(&self) -> bool {
        self.mode == Mode::Done
    }

    /// The fewest bytes that complete the object from here.
    pub fn distance(&self) -> usize {
        let close = self.stack.len();
        match self.mode {
            Mode::Done => 0,
            Mode::Start => 2,
            // A digit.
            Mode::Value => 1 + close,
            Mode::ValueOrClose | Mode::KeyOrClose | Mode::After => close,
            // `"":0`
            Mode::Key => 4 + close,
            // `:0`
            Mode::Colon => 2 + close,
            Mode::Str { key, esc, utf8 } => {
                let esc = match esc {
                    0 => 0,
                    u8::MAX => 1,
                    n => usize::from(n),
                };
                esc + usize::from(utf8) + 1 + if key { 2 } else { 0 } + close
            }
            Mode::Num(n, _) => usize::from(!n.complete()) + close,
            Mode::Word(w, seen) => w.len() - seen + close,
        }
    }

    /// Takes `b`; false (and the state unspecified) when it cannot continue the object.
    pub fn feed(&mut self, b: u8) -> bool {
        match self.mode {
            Mode::Done => false,
            Mode::Str { key, esc, utf8 } => self.string(key, esc, utf8, b),
            Mode::Num(n, digits) => match n.next(b, digits) {
                Some(next) => {
                    let digits = if next == n { digits + 1 } else { 1 };
                    self.mode = Mode::Num(next, digits);
                    true
                }
                None if n.complete() => {
                    self.mode = Mode::After;
                    self.feed(b)
                }
                None => false,
            },
            Mode::Word(w, seen) => {
                if w.get(seen) != Some(&b) {
                    return false;
                }
                self.mode = if seen + 1 == w.len() {
                    Mode::After
                } else {
                    Mode::Word(w, seen + 1)
                };
                true
            }
            _ if matches!(b, b' ' | b'\n' | b'\t' | b'\r') => {
                // One byte of whitespace between tokens, not before the object.
                let ok = !self.space && self.mode != Mode::Start;
                self.space = true;
                ok
            }
            mode => {
                self.space = false;
                self.structural(mode, b)
            }
        }
    }

    fn string(&mut self, key: bool, esc: u8, utf8: u8, b: u8) -> bool {
        let (esc, utf8) = match (esc, utf8) {
            (0, 0) => match b {
                b'"' => {
                    self.mode = if key { Mode::Colon } else { Mode::After };
                    return true;
                }
                b'\\' => (u8::MAX, 0),
                0..=0x1f | 0x80..=0xc1 | 0xf5..=0xff => return false,
                0xc2..=0xdf => (0, 1),
                0xe0..=0xef => (0, 2),
                0xf0..=0xf4 => (0, 3),
                _ => (0, 0),
            },
            (0, n) if (0x80..=0xbf).contains(&b) => (0, n - 1),
            (u8::MAX, _) => match b {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => (0, 0),
                b'u' => (4, 0),
                _ => return false,
            },
            (n, 0) if n != 0 && b.is_ascii_hexdigit() => (n - 1, 0),
            _ => return false,
        };
        self.mode = Mode::Str { key, esc, utf8 };
        true
    }

    fn open(&mut self, bracket: u8) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(bracket);
        self.mode = if bracket == b'{' {
            Mode::KeyOrClose
        } else {
            Mode::ValueOrClose
        };
        true
    }

    fn close(&mut self, bracket: u8) -> bool {
        let open = if bracket == b'}' { b'{' } else { b'[' };
        if self.stack.pop() != Some(open) {
            return false;
        }
        self.mode = if self.stack.is_empty() {
            Mode::Done
        } else {
            Mode::After
        };
        true
    }

    fn value(&mut self, b: u8) -> bool {
        self.mode = match b {
            b'{' | b'[' => return self.open(b),
            b'"' => Mode::Str {
                key: false,
                esc: 0,
                utf8: 0,
            },
            b'-' => Mode::Num(Num::Minus, 0),
            b'0' => Mode::Num(Num::Zero, 1),
            b'1'..=b'9' => Mode::Num(Num::Int, 1),
            b't' => Mode::Word(b"true", 1),
            b'f' => Mode::Word(b"false", 1),
            b'n' => Mode::Word(b"null", 1),
            _ => return false,
        };
        true
    }

    fn structural(&mut self, mode: Mode, b: u8) -> bool {
        match (mode, b) {
            (Mode::Start, b'{') => self.open(b),
            (Mode::Value, _) => self.value(b),
            (Mode::ValueOrClose, b']') => self.close(b),
            (Mode::ValueOrClose, _) => self.value(b),
            (Mode::KeyOrClose, b'}') => self.close(b),
            (Mode::KeyOrClose | Mode::Key, b'"') => {
                self.mode = Mode::Str {
                    key: true,
                    esc: 0,
                    utf8: 0,
                };
                true
            }
            (Mode::Colon, b':') => {
                self.mode = Mode::Value;
                true
            }
            (Mode::After, b',') => {
                self.mode = match self.stack.last() {
                    Some(b'{') => Mode::Key,
                    _ => Mode::Value,
                };
                true
            }
            (Mode::After, b'}' | b']') => self.close(b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// How many bytes of `s` are accepted, and whether the object is then complete.
    fn run(s: &str) -> (usize, bool) {
        let mut j = Json::default();
        for (i, b) in s.bytes().enumerate() {
            if !j.feed(b) {
                return (i, false);
            }
        }
        (s.len(), j.done())
    }

    #[test]
    fn accepts_whole_objects_and_says_they_are_done() {
        for s in [
            r#"{}"#,
            r#"{"a": 1}"#,
            r#"{"city": "Paris", "days": [1, 2.5, -3e+2, 0.0], "ok": true, "x": null}"#,
            r#"{"nested": {"deep": [{"k": false}, [], {}]}, "s": "q\"\\\/\n\u00e9 é"}"#,
            "{\"a\":\n1}",
        ] {
            assert_eq!(run(s), (s.len(), true), "{s}");
            // Every valid object is valid JSON by serde's reading too.
            assert!(serde_json::from_str::<serde_json::Value>(s)
                .unwrap()
                .is_object());
        }
    }

    #[test]
    fn a_prefix_is_accepted_but_not_done() {
        let s = r#"{"city": "Par"#;
        assert_eq!(run(s), (s.len(), false));
        assert_eq!(run(r#"{"n": 12"#), (8, false));
    }

    #[test]
    fn refuses_the_first_byte_that_breaks_the_object() {
        for (s, at) in [
            ("[1]", 0),
            (" {}", 0),
            (r#"{"a" 1}"#, 5),
            (r#"{"a": 01}"#, 7),
            (r#"{"a": 1,}"#, 8),
            (r#"{"a": tru}"#, 9),
            (r#"{"a": "\x"}"#, 8),
            (r#"{"a": [1}"#, 8),
            ("{\"a\":  1}", 6),
            ("{\"a\": \"\n\"}", 7),
            (r#"{"a": 1}}"#, 8),
            (r#"{"a": 1.}"#, 8),
            (r#"{"a": -}"#, 7),
            (r#"{1: 2}"#, 1),
            (r#"{"a": 1e999}"#, 10),
            (r#"{"a": 123456789012345678}"#, 23),
        ] {
            assert_eq!(run(s).0, at, "{s}");
        }
    }

    #[test]
    fn strings_hold_only_whole_utf8_characters() {
        let mut j = Json::default();
        assert!(br#"{"a": ""#.iter().all(|b| j.feed(*b)));
        let mut bad = j.clone();
        assert!(!bad.feed(0x80), "a lone continuation byte");
        let mut cut = j.clone();
        assert!(cut.feed(0xc3));
        // The continuation byte, the quote, the brace.
        assert_eq!(cut.distance(), 3);
        assert!(!cut.clone().feed(b'"'), "a character cut by the quote");
        assert!("é€😀\"}".bytes().all(|b| j.feed(b)) && j.done());
    }

    #[test]
    fn distance_is_the_shortest_completion() {
        for (s, rest) in [
            ("", "{}"),
            ("{", "}"),
            (r#"{"a"#, r#"":0}"#),
            (r#"{"a""#, ":0}"),
            (r#"{"a":"#, "0}"),
            (r#"{"a": [{"b": "x\"#, r#"n"}]}"#),
            (r#"{"a": "\u00"#, r#"00"}"#),
            (r#"{"a": -"#, "0}"),
            (r#"{"a": 1"#, "}"),
            (r#"{"a": tr"#, "ue}"),
            (r#"{"a": 1,"#, r#""":0}"#),
            ("{}", ""),
        ] {
            let mut j = Json::default();
            assert!(s.bytes().all(|b| j.feed(b)), "{s}");
            assert_eq!(j.distance(), rest.len(), "{s}");
            assert!(rest.bytes().all(|b| j.feed(b)) && j.done(), "{s} + {rest}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{{\"a\": {}", "[".repeat(MAX_DEPTH));
        assert_eq!(run(&deep).0, deep.len() - 1);
    }
}
