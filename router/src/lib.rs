//! Sluicegate's decision engine: given what is known about a request
//! ([`RequestFacts`]), choose the route that serves it ([`Engine::decide`]).
//! No HTTP server lives here.

pub mod classifier;
mod condition;
mod engine;
mod facts;
pub mod stats;
mod tokens;

#[cfg(test)]
mod tests;

pub use engine::{DecideError, Decision, Engine};
pub use facts::{Classification, RequestFacts, Signals};
pub use tokens::estimate_tokens;
