//! The HTTP layer: the shared state ([`state`]), who is calling ([`auth`])
//! and how often ([`rate_limit`]), the extractors whose rejections are JSON
//! ([`extract`]), the handlers of each area ([`routes`]), and [`router`],
//! which merges the areas' routers and adds the layers every request goes
//! through. Handlers parse, call a service, and map the result; no SQL and
//! no business rule lives here.

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::TraceLayer;

pub mod auth;
pub mod error;
pub mod extract;
pub mod guard;
pub mod rate_limit;
pub mod routes;
pub mod state;

pub use state::{AppState, Inner};

/// Every route: each area's router, nested under its prefix, and the
/// layers every request goes through (outermost last): the rate limiter
/// (which also authenticates), the body limit, JSON errors, request
/// decompression and the request span.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let admin = routes::admin::router()
        .merge(routes::commissions::admin_routes())
        .merge(routes::cpa_status::admin_routes())
        .merge(routes::fraud::admin_routes());
    let edge = routes::clicks::router().merge(routes::edge_links::router());
    let api = routes::events::router()
        .merge(routes::fraud::api_routes())
        .merge(routes::commission_balances::api_routes());
    Router::new()
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(routes::postback::router())
        .nest("/admin/v1", admin)
        .nest("/edge/v1", edge)
        .nest("/api/v1", api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::limit,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(
            crate::http::error::json_errors,
        ))
        .layer(RequestDecompressionLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request: method and path only. The query string is
/// left out (a postback carries its brand's secret there), and headers are
/// never recorded (credentials), at any log level.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
    )
}
