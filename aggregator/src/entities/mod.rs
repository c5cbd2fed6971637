//! Plain data the services and the store share — the catalogue's entities
//! ([`catalog`]) and credentials ([`credentials`]) — so that neither the
//! services nor the store import each other for their types.

pub mod catalog;
pub mod credentials;
