//! One sequence on the model thread ([`Seq`]): its job, KV cache, sampler, detokenizer and
//! stop strings, and what it sends its client as tokens are accepted.

use std::time::{Duration, Instant};

use super::job::{Event, Finish, Job};
use super::sampler::{Sampler, PENALTY_WINDOW};
use super::stop::StopMatcher;
use crate::model::{Llama, SeqCache};
use crate::tokenizer::{Detokenizer, GgufTokenizer};

/// A job taken from the queue: a sequence being prefilled or decoded.
pub(super) struct Seq {
    pub job: Job,
    pub cache: SeqCache,
    /// Prompt tokens already in the cache.
    pub fed: usize,
    /// Prompt and generated tokens.
    pub tokens: Vec<u32>,
    pub generated: Vec<u32>,
    pub sampler: Sampler,
    pub detok: Detokenizer,
    pub stop: StopMatcher,
    pub compute: Duration,
    pub admitted: Instant,
}

impl Seq {
    pub fn prefilling(&self) -> bool {
        self.fed < self.job.prompt.len()
    }

    /// Sends an event; false when the client has gone.
    pub fn send(&self, event: Event) -> bool {
        self.job.events.send(event).is_ok()
    }

    /// The last events of a sequence that ends with `finish`: text held back for stop strings
    /// (unless a stop string ended it), then `Done`.
    fn done(&mut self, finish: Finish, stopped_by_string: bool) -> Vec<Event> {
        let mut last = Vec::with_capacity(2);
        if !stopped_by_string {
            let rest = self.stop.finish();
            if !rest.is_empty() {
                last.push(Event::Text(rest));
            }
        }
        last.push(Event::Done {
            finish,
            prompt_tokens: self.job.prompt.len() as u32,
            completion_tokens: self.generated.len() as u32,
            compute: self.compute,
        });
        last
    }

    /// Takes a sampled token. `None` while the sequence goes on; when it is over, the events
    /// still to send its client (sent by the scheduler once the slot is counted free, so that
    /// a client that sees its answer end finds the slot free).
    pub fn accept(
        &mut self,
        token: u32,
        tok: &GgufTokenizer,
        context: usize,
    ) -> Option<Vec<Event>> {
        // Under a grammar, a token it does not allow (there was none it did) ends the answer.
        let constrained = self.job.constraint.as_mut().map(|c| c.accept(token));
        if constrained == Some(false) || tok.eos.contains(&token) {
            return Some(self.done(Finish::Stop, false));
        }
        self.tokens.push(token);
        self.generated.push(token);
        let text = match self.detok.push(tok, token) {
            Ok(t) => t,
            Err(e) => return Some(vec![Event::Failed(e.to_string())]),
        };
        let released = self.stop.push(&text);
        if !released.text.is_empty() && !self.send(Event::Text(released.text)) {
            // The client has gone.
            return Some(Vec::new());
        }
        if released.stopped {
            return Some(self.done(Finish::Stop, true));
        }
        if self.job.constraint.as_ref().is_some_and(|c| c.done()) {
            return Some(self.done(Finish::Stop, false));
        }
        if self.generated.len() >= self.job.max_tokens || self.tokens.len() >= context {
            return Some(self.done(Finish::Length, false));
        }
        None
    }
}

pub(super) fn admit(model: &Llama, job: Job) -> Option<Seq> {
    if job.events.is_closed() {
        return None;
    }
    if job.prompt.is_empty() || job.max_tokens == 0 {
        let _ = job
            .events
            .send(Event::Failed("empty prompt or max_tokens 0".into()));
        return None;
    }
    Some(Seq {
        tokens: job.prompt.clone(),
        cache: model.new_cache(),
        fed: 0,
        generated: Vec::new(),
        sampler: Sampler::new(job.sampling.clone()),
        detok: Detokenizer::default(),
        stop: StopMatcher::new(job.stop.clone()),
        compute: Duration::ZERO,
        admitted: Instant::now(),
        job,
    })
}

/// A sequence's next token from its logits row; with the sequence's index in `active`.
pub(super) fn sample((i, row, s): &mut (usize, &mut [f32], &mut Seq)) -> (usize, u32) {
    if let Some(c) = s.job.constraint.as_mut() {
        c.mask(row, s.job.max_tokens.saturating_sub(s.generated.len()));
    }
    let start = s.tokens.len().saturating_sub(PENALTY_WINDOW);
    (*i, s.sampler.sample(row, &s.tokens[start..], &s.generated))
}
