//! Constrained decoding: a [`Grammar`] of literal text, a choice among strings and JSON
//! objects, and a sequence's [`Constraint`], which masks each step's logits to the tokens the
//! grammar allows next and says when the grammar is complete. It is what lets a local model
//! honour `tool_choice` `"required"` or a named function: the answer is forced into the
//! model's own call format, so whatever the model's weights, it is a well-formed call.
//!
//! Each step keeps the most likely of the allowed tokens ([`KEEP`]), so the sampler still
//! chooses among the model's preferences. A token is allowed only if the bytes the grammar
//! still needs after it ([`State::distance`]) fit in the tokens left before `max_tokens`: a
//! grammar that can be completed in the room it is given always is.

pub mod json;

use std::sync::Arc;

use json::Json;

use crate::tokenizer::Pieces;

/// Allowed tokens kept per step, the most likely first.
pub const KEEP: usize = 40;

/// Candidates looked at in order of likelihood before the rest of the vocabulary is searched.
const FIRST_LOOK: usize = 512;

/// A part of a grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// This text exactly.
    Lit(Vec<u8>),
    /// One of these strings (none a prefix of another where the next segment could follow
    /// it with the same byte).
    OneOf(Vec<Vec<u8>>),
    /// One JSON object ([`json`]).
    Object,
}

/// Segments, matched one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    segments: Vec<Segment>,
    /// Text that may not appear inside an object (the format's closing tag, which a reader
    /// of the format would take for the end of the call).
    forbid: Vec<u8>,
}

impl Grammar {
    /// A grammar of `segments` (empty literals and choices are left out).
    pub fn new(segments: Vec<Segment>) -> Self {
        let segments = segments
            .into_iter()
            .filter(|s| match s {
                Segment::Lit(l) => !l.is_empty(),
                Segment::OneOf(o) => !o.is_empty(),
                Segment::Object => true,
            })
            .collect();
        Grammar {
            segments,
            forbid: Vec::new(),
        }
    }

    /// The same grammar with `text` never inside an object.
    pub fn forbidding(mut self, text: &str) -> Self {
        self.forbid = text.as_bytes().to_vec();
        self
    }

    /// The state before any byte.
    pub fn start(&self) -> State {
        State::default()
    }
}

/// How far into a grammar the bytes so far are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    seg: usize,
    /// Bytes of the current literal matched.
    off: usize,
    /// Bytes of the current choice so far.
    chosen: Vec<u8>,
    json: Json,
    /// The object's last bytes, as many as could begin the forbidden text.
    recent: Vec<u8>,
}

impl State {
    fn next_segment(&mut self) {
        self.seg += 1;
        self.off = 0;
        self.chosen.clear();
        self.json = Json::default();
        self.recent.clear();
    }

    /// Whether the grammar is complete.
    pub fn done(&self, g: &Grammar) -> bool {
        self.seg >= g.segments.len()
    }

    /// Takes `b`; false (and the state unspecified) when the grammar does not allow it.
    pub fn feed(&mut self, g: &Grammar, b: u8) -> bool {
        loop {
            let Some(seg) = g.segments.get(self.seg) else {
                return false;
            };
            match seg {
                Segment::Lit(l) => {
                    if l.get(self.off) != Some(&b) {
                        return false;
                    }
                    self.off += 1;
                    if self.off == l.len() {
                        self.next_segment();
                    }
                    return true;
                }
                Segment::OneOf(options) => {
                    self.chosen.push(b);
                    if options.iter().any(|o| o.starts_with(&self.chosen)) {
                        return true;
                    }
                    self.chosen.pop();
                    if !options.contains(&self.chosen) {
                        return false;
                    }
                    // The choice is complete: `b` belongs to what follows.
                    self.next_segment();
                }
                Segment::Object => {
                    if !g.forbid.is_empty() {
                        self.recent.push(b);
                        if self.recent.ends_with(&g.forbid) {
                            return false;
                        }
                        if self.recent.len() >= g.forbid.len() {
                            self.recent.remove(0);
                        }
                    }
                    if !self.json.feed(b) {
                        return false;
                    }
                    if self.json.done() {
                        self.next_segment();
                    }
                    return true;
                }
            }
        }
    }

    /// Takes all of `bytes`.
    pub fn feed_all(&mut self, g: &Grammar, bytes: &[u8]) -> bool {
        bytes.iter().all(|b| self.feed(g, *b))
    }

    /// The fewest bytes that complete the grammar from here.
    pub fn distance(&self, g: &Grammar) -> usize {
        self.distance_in(g, None)
    }

    /// The fewest steps that complete the grammar from here: bytes, or with `costs` the
    /// tokens of a shortest spelling of each literal and choice in the vocabulary.
    fn distance_in(&self, g: &Grammar, costs: Option<&Costs>) -> usize {
        let cost = |seg: usize, opt: usize, off: usize, bytes: usize| -> usize {
            costs
                .and_then(|c| c.0.get(seg)?.get(opt)?.get(off).copied())
                .unwrap_or(bytes)
        };
        let whole = |i: usize, s: &Segment| match s {
            Segment::Lit(l) => cost(i, 0, 0, l.len()),
            Segment::OneOf(o) => (0..o.len())
                .map(|k| cost(i, k, 0, o[k].len()))
                .min()
                .unwrap_or(0),
            Segment::Object => 2,
        };
        let here = match g.segments.get(self.seg) {
            None => return 0,
            Some(Segment::Lit(l)) => cost(self.seg, 0, self.off, l.len() - self.off),
            Some(Segment::OneOf(o)) => (0..o.len())
                .filter(|k| o[*k].starts_with(&self.chosen))
                .map(|k| {
                    let done = self.chosen.len();
                    cost(self.seg, k, done, o[k].len() - done)
                })
                .min()
                .unwrap_or(0),
            Some(Segment::Object) => self.json.distance(),
        };
        let rest: usize = g
            .segments
            .iter()
            .enumerate()
            .skip(self.seg + 1)
            .map(|(i, s)| whole(i, s))
            .sum();
        here + rest
    }
}

/// Per segment, per option (a literal has one), per offset: the tokens of a shortest
/// spelling of the rest of it in a vocabulary's pieces. Tokens that would span two segments
/// are not counted, so it is an upper bound on the fewest steps; a JSON object's closing
/// bytes count one step each (every byte is a piece of the vocabularies the engine reads).
#[derive(Debug, Clone, Default)]
struct Costs(Vec<Vec<Vec<usize>>>);

/// A cost for text the vocabulary cannot spell: larger than any room.
const UNSPELLABLE: usize = usize::MAX / 4;

impl Costs {
    fn new(g: &Grammar, pieces: &Pieces) -> Self {
        let spell = |s: &[u8]| -> Vec<usize> {
            let mut c = vec![UNSPELLABLE; s.len() + 1];
            c[s.len()] = 0;
            for i in (0..s.len()).rev() {
                for l in 1..=(s.len() - i).min(MAX_PIECE) {
                    if c[i + l] < UNSPELLABLE && pieces.contains(&s[i..i + l]) {
                        c[i] = c[i].min(1 + c[i + l]);
                    }
                }
            }
            c
        };
        Costs(
            g.segments
                .iter()
                .map(|s| match s {
                    Segment::Lit(l) => vec![spell(l)],
                    Segment::OneOf(o) => o.iter().map(|x| spell(x)).collect(),
                    Segment::Object => Vec::new(),
                })
                .collect(),
        )
    }
}

/// Longest piece looked for when spelling a literal.
const MAX_PIECE: usize = 32;

/// A sequence's grammar, where it is in it, and its vocabulary's bytes.
#[derive(Debug, Clone)]
pub struct Constraint {
    grammar: Arc<Grammar>,
    pieces: Pieces,
    state: State,
    /// A scratch state, reused for every candidate.
    trial: State,
    costs: Costs,
}

impl Constraint {
    pub fn new(grammar: Arc<Grammar>, pieces: Pieces) -> Self {
        let state = grammar.start();
        Constraint {
            costs: Costs::new(&grammar, &pieces),
            grammar,
            pieces,
            trial: state.clone(),
            state,
        }
    }

    pub fn done(&self) -> bool {
        self.state.done(&self.grammar)
    }

    /// The fewest tokens that complete the grammar from here (an upper bound: see
    /// [`Costs`]).
    pub fn distance(&self) -> usize {
        self.state.distance_in(&self.grammar, Some(&self.costs))
    }

    /// The state after token `id`, if the grammar allows it.
    fn after(&mut self, id: u32) -> Option<&State> {
        let bytes = self.pieces.get(id).filter(|b| !b.is_empty())?;
        self.trial.clone_from(&self.state);
        self.trial
            .feed_all(&self.grammar, bytes)
            .then_some(&self.trial)
    }

    /// Sets every logit the grammar does not allow next to `-inf`, keeping the [`KEEP`] most
    /// likely allowed tokens whose completion still fits in the `left` tokens (this one
    /// included; when the grammar cannot be completed in them at all, any allowed token: the
    /// answer is then cut off at `max_tokens`, as an unconstrained one would be). Returns how
    /// many are kept; 0 when nothing can continue (the logits are then left as they were).
    pub fn mask(&mut self, logits: &mut [f32], left: usize) -> usize {
        let room = if self.distance() <= left {
            left.saturating_sub(1)
        } else {
            usize::MAX
        };
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        let first = FIRST_LOOK.min(order.len());
        if first < order.len() {
            order.select_nth_unstable_by(first, by_logit);
        }
        order[..first].sort_unstable_by(by_logit);
        let mut kept: Vec<u32> = Vec::with_capacity(KEEP);
        let mut sorted_rest = false;
        let mut i = 0;
        while i < order.len() && kept.len() < KEEP {
            if i == first && kept.is_empty() && !sorted_rest {
                order[first..].sort_unstable_by(by_logit);
                sorted_rest = true;
            }
            if i == first && !kept.is_empty() {
                break;
            }
            let id = order[i];
            i += 1;
            let grammar = Arc::clone(&self.grammar);
            let costs = std::mem::take(&mut self.costs);
            let ok = self
                .after(id)
                .is_some_and(|s| s.distance_in(&grammar, Some(&costs)) <= room);
            self.costs = costs;
            if ok {
                kept.push(id);
            }
        }
        if kept.is_empty() {
            return 0;
        }
        let mut keep = vec![false; logits.len()];
        for id in &kept {
            keep[*id as usize] = true;
        }
        for (l, k) in logits.iter_mut().zip(keep) {
            if !k {
                *l = f32::NEG_INFINITY;
            }
        }
        kept.len()
    }

    /// Takes the token chosen; false when the grammar does not allow it.
    pub fn accept(&mut self, id: u32) -> bool {
        match self.pieces.get(id) {
            Some(bytes) => self.state.feed_all(&self.grammar, bytes),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
