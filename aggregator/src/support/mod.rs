//! Small generic helpers the services share: the wall clock ([`clock`]),
//! bounded maps ([`bounded`]), presence filters ([`presence`]), a reload
//! throttle ([`throttle`]) and the background jobs' loop ([`schedule`]).
//! Nothing here knows about clicks, events or money.

pub mod bounded;
pub mod clock;
pub mod presence;
pub mod schedule;
pub mod throttle;
