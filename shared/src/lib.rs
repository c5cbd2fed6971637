//! Clickstitch's pure domain logic, shared by the edge worker (wasm32) and
//! the aggregator (native).
//!
//! This crate owns the types and rules both sides must agree on: ids, country
//! codes, link templates, sub-ids, geo and bot rules, visitor hashes and the
//! click wire format. It must not do IO, read a clock or draw randomness:
//! callers pass time and random bytes in, so every function is deterministic
//! and builds for `wasm32-unknown-unknown` and native alike.

#![warn(missing_docs)]

pub mod bot;
pub mod click;
pub mod country;
pub mod fingerprint;
pub mod geo;
pub mod ids;
pub mod ip;
pub mod link;
pub mod subid;
pub mod template;

pub use click::{Click, ClickBatch, FieldError, GeoBlock, RawClick, RawGeoBlock};
pub use country::CountryCode;
pub use ids::{AffiliateId, BrandId, CampaignId, ClickId, ClickIdGenerator, ShortCode};
pub use link::LinkDefinition;
pub use template::{LinkTemplate, MacroValues};
