//! Services named after the flows they run, between the HTTP layer and the
//! store: each takes parsed input, applies the engines, and persists. None
//! knows of HTTP.

pub mod clicks;
pub mod commission;
pub mod conversions;
pub mod fraud;
