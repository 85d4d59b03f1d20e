//! What the scheduler and a sequence exchange with a caller: the job submitted, and the events
//! its receiver gets back. Shared by the scheduler (`engine`) and a sequence's state (`seq`).

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::sampler::SamplingParams;
use crate::grammar::Constraint;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What a job's receiver gets, in order: text pieces, then `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    Done {
        finish: Finish,
        prompt_tokens: u32,
        completion_tokens: u32,
        /// This sequence's share of the model's busy time: each step's duration split
        /// between the sequences in it by the tokens each fed.
        compute: Duration,
    },
    Failed(String),
}

/// One generation request.
#[derive(Debug)]
pub struct Job {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// A grammar the answer must follow (a required tool call); the answer ends when it is
    /// complete.
    pub constraint: Option<Constraint>,
    pub events: UnboundedSender<Event>,
}
