//! The vocabulary the aggregator's engines share: money in integer minor
//! units of one currency, basis points and FX tables ([`money`]), the
//! global player id and account flags ([`player`]), the KYC state of an
//! attribution ([`kyc`]), and time units ([`units`]).
//!
//! Pure: no IO, no clock, no randomness. Ids, countries, short codes and
//! link templates that the edge worker also needs live in
//! `clickstitch-shared`.

#![warn(missing_docs)]

pub mod kyc;
pub mod money;
pub mod player;
pub mod units;
