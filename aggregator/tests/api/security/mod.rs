//! The security suite: what an attacker or a careless client tries, on the
//! real server — connection and size bounds, rate limits and the
//! failed-authentication lockout, operator roles and who is recorded for
//! what, and cross-brand player linking that no brand can forge.
//! (Secrets kept out of logs are checked by the `log_secrets` test.)

mod limits;
mod operators;
mod player_linking;
mod rate_limits;
