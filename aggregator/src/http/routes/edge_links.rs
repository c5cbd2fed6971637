//! `GET /edge/v1/links/{code}`: the edge's lookup of a link definition.
//! Only active links are served; the edge caches answers (including 404s)
//! and keeps serving a cached link while this endpoint is unreachable.

use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::Json;

use clickstitch_shared::ShortCode;

use crate::http::auth::EdgeCaller;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The definition of an active link, or 404.
pub async fn link_definition(
    _edge: EdgeCaller,
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let code = ShortCode::parse(&code).map_err(|_| ApiError::NotFound("link"))?;
    let def = state
        .catalog()
        .resolve_link(&code)
        .await?
        .ok_or(ApiError::NotFound("link"))?;
    Ok(([(CACHE_CONTROL, "private, max-age=60")], Json(def)))
}

/// The link-definition route (under `/edge/v1`).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/links/{code}", axum::routing::get(link_definition))
}
