//! Clickstitch edge worker: serves short links on Cloudflare Workers and
//! workerd.
//!
//! `GET /{code}` resolves the link, geo-checks the visitor (451 when the
//! brand's jurisdiction or the link forbids the country), screens bots,
//! issues a UUIDv7 click id and answers 302 to the brand's destination with
//! the macros filled; the click record leaves the edge in batches (queue or
//! direct buffer). `GET /health` answers `ok`.
//!
//! Layout: the pure, native-testable modules ([`pipeline`], [`link_cache`],
//! [`dedup`], [`buffer`], [`config`], [`trust`], [`visitor`]) decide; the wasm-only `runtime` module
//! does the IO; the event handlers below only wire.

pub mod buffer;
pub mod config;
pub mod dedup;
pub mod link_cache;
pub mod pipeline;
#[cfg(target_arch = "wasm32")]
mod runtime;
pub mod trust;
pub mod visitor;

#[cfg(target_arch = "wasm32")]
mod events {
    use worker::{event, Context, Env, MessageBatch, Request, Response, Result};

    use crate::buffer::EdgeRecord;

    #[event(start)]
    fn start() {
        clickstitch_shared::bot::warm_up();
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
        crate::runtime::handle_fetch(req, env, ctx).await
    }

    #[event(queue)]
    async fn queue(batch: MessageBatch<EdgeRecord>, env: Env, _ctx: Context) -> Result<()> {
        crate::runtime::handle_queue(batch, env).await
    }
}
