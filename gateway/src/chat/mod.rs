//! The chat pipeline: a parsed request travels through its own tower stack
//! (see [`crate::stack`]) as a [`ChatCall`] and comes out as an HTTP response.

mod decide;
mod dispatch;
mod stream;

use std::time::Instant;

use http::{Extensions, HeaderMap};
use sluicegate_wire::ChatRequest;

pub use decide::{Decide, DecideLayer};
pub use dispatch::Dispatch;

/// One chat request inside the gateway, after parsing.
#[derive(Debug)]
pub struct ChatCall {
    pub request_id: String,
    pub headers: HeaderMap,
    pub body: ChatRequest,
    /// Results of earlier layers (the routing decision, later the classification).
    pub extensions: Extensions,
    pub received: Instant,
}

/// Response headers that say how a request was routed.
pub mod headers {
    pub const ROUTE: &str = "x-sluicegate-route";
    pub const BACKEND: &str = "x-sluicegate-backend";
    pub const DECISION: &str = "x-sluicegate-decision";
    /// Present when the answering route is a fallback: the routes that failed first, with
    /// why, e.g. `remote(unavailable)`.
    pub const FALLBACK: &str = "x-sluicegate-fallback";
}
