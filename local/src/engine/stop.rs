//! Stop strings over streamed text: text that might be the start of a stop string is held back
//! until the next piece shows whether it is; a stop string is never sent.

/// What a piece of text released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Text safe to send now.
    pub text: String,
    /// A stop string was found; nothing after it may be sent.
    pub stopped: bool,
}

#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds generated text; returns what may be sent.
    pub fn push(&mut self, text: &str) -> Released {
        self.held.push_str(text);
        if self.stops.is_empty() {
            return Released {
                text: std::mem::take(&mut self.held),
                stopped: false,
            };
        }
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            let mut text = std::mem::take(&mut self.held);
            text.truncate(at);
            return Released {
                text,
                stopped: true,
            };
        }
        // Hold back the longest tail that some stop string starts with.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let rest = self.held.split_off(keep);
        Released {
            text: std::mem::replace(&mut self.held, rest),
            stopped: false,
        }
    }

    /// The end of generation: whatever was held back is plain text after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for p in pieces {
            let r = m.push(p);
            out.push(r.text);
            if r.stopped {
                return (out, true, String::new());
            }
        }
        let rest = m.finish();
        (out, false, rest)
    }

    #[test]
    fn a_stop_string_split_across_pieces_is_held_and_dropped() {
        let (out, stopped, _) = run(&["END"], &["Hello E", "N", "D and more"]);
        assert!(stopped);
        assert_eq!(out, ["Hello ", "", ""]);
    }

    #[test]
    fn held_text_is_released_when_it_turns_out_not_to_stop() {
        let (out, stopped, rest) = run(&["END"], &["Hello E", "Nx", " fin", "E"]);
        assert!(!stopped);
        assert_eq!(out, ["Hello ", "ENx", " fin", ""]);
        assert_eq!(rest, "E");
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_unicode_is_safe() {
        let (out, stopped, _) = run(&["\n\n", "é!"], &["ça é", "! x\n\n"]);
        assert!(stopped);
        assert_eq!(out.concat(), "ça ");
        let (out, stopped, rest) = run(&[], &["a", "b"]);
        assert_eq!(
            (out.concat(), stopped, rest.as_str()),
            ("ab".into(), false, "")
        );
    }
}
