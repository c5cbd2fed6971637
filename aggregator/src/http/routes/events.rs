//! `POST /api/v1/events` (brand key): brands report player events.
//! `GET /api/v1/players/{player_id}/attribution` (brand key): a player's
//! attribution as it stands.
//!
//! 201 for a new event, 200 with `Idempotent-Replayed: true` for a replay
//! of the same event (same body as the first answer), 409 when the event id
//! was used with a different payload, 422 with every field problem, 503
//! when nothing could be stored.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::events::{BrandEvent, BrandPlayerId, EventRequest, Source};
use crate::http::auth::BrandCaller;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::services::conversions::Submitted;

/// Header set on replayed answers.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Submits a validated event and shapes the answer.
pub async fn submit(state: &AppState, event: BrandEvent) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let event_type = event.kind.type_name();
    let result = state.conversions().submit(state.catalog(), event).await;
    if result.is_ok() {
        state
            .metrics()
            .conversion_latency(event_type, started.elapsed());
    }
    match result {
        Ok(Submitted {
            replayed: false,
            response,
        }) => Ok((StatusCode::CREATED, Json(response)).into_response()),
        Ok(Submitted {
            replayed: true,
            response,
        }) => {
            let mut r = (StatusCode::OK, Json(response)).into_response();
            r.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes one event.
pub async fn post_event(
    BrandCaller(brand): BrandCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EventRequest>,
) -> Result<Response, ApiError> {
    let event = body
        .with_ip_storage(state.catalog().ip_storage(brand))
        .with_link_group(&state.catalog().link_group(brand))
        .into_event(
            brand,
            Source::Api,
            &state.event_time_policy(crate::support::clock::now_ms()),
        )
        .map_err(ApiError::Validation)?;
    submit(&state, event).await
}

/// A player's attribution.
pub async fn get_attribution(
    BrandCaller(brand): BrandCaller,
    State(state): State<AppState>,
    Path(player): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let player = BrandPlayerId::parse(&player).map_err(|_| ApiError::NotFound("player"))?;
    let attribution = state
        .conversions()
        .stitcher()
        .read_player(brand, &player)
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    Ok(Json(attribution))
}

/// The brand event and attribution routes (under `/api/v1`).
pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/events", post(post_event))
        .route("/players/{player_id}/attribution", get(get_attribution))
}
