//! The one error type of the HTTP API. Every failure becomes a JSON body
//! `{"error": code, "message": text, "details": [...]}` with a fitting
//! status; 503 (with `Retry-After`) only for failures worth retrying.
//! Every service error is mapped to it here, in one place (the `From`
//! impls at the end), so handlers only write `?`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::catalog::CatalogError;
use crate::services::commission::cpa_status::CpaStatusError;
use crate::services::commission::job::CommissionError;
use crate::store::ledger::LedgerStoreError;
use crate::store::StoreError;

pub use crate::error::Problem;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The body is not JSON or not of the expected shape.
    #[error("{0}")]
    BadRequest(String),
    /// Wrong `Content-Type`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is too large.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body holds more records than one request may carry.
    #[error("{0}")]
    TooManyRecords(String),
    /// Well-formed, but fields are invalid.
    #[error("request is invalid")]
    Validation(Vec<Problem>),
    /// Contradicts existing data.
    #[error("{0}")]
    Conflict(String),
    /// The caller's rate limit is used up (a 429 with `Retry-After`).
    #[error("too many {what}; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// What was too many.
        what: &'static str,
        /// Seconds until a request would be accepted.
        retry_after_secs: u64,
    },
    /// Storage is unavailable: nothing was stored, retry later.
    #[error("storage unavailable, nothing was stored; retry later")]
    Unavailable,
    /// Anything else (details are logged, not returned).
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
    details: &'a [Problem],
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::TooManyRecords(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_records"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(detail = %detail, "internal error");
        }
        let details: &[Problem] = match &self {
            ApiError::Validation(p) => p,
            _ => &[],
        };
        let body = Body {
            error: code,
            message: self.to_string(),
            details,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Most bytes of a framework error body carried into its JSON message.
const MAX_ERROR_TEXT: usize = 4 * 1024;

/// Makes every error response JSON: a 4xx or 5xx that is not JSON already
/// (the router's empty 404 and 405, the body limit's plain-text 413, a
/// path that is not UTF-8, …) becomes `{"error": code, "message": text}`
/// with the same status and headers (`Allow`, `Retry-After`, …).
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        _ if status.is_client_error() => "client_error",
        _ => "internal",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            tracing::warn!(error = %e, "storage unavailable");
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<crate::services::clicks::IngestError> for ApiError {
    fn from(e: crate::services::clicks::IngestError) -> Self {
        use crate::ingest::BatchError;
        use crate::services::clicks::IngestError;
        match e {
            IngestError::Batch(b @ BatchError::TooManyRecords) => {
                ApiError::TooManyRecords(b.to_string())
            }
            IngestError::Batch(b @ BatchError::Malformed(_)) => ApiError::BadRequest(b.to_string()),
            IngestError::Store(s) => s.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(what) => ApiError::Validation(vec![Problem::new(
                what.replace(' ', "_") + "_id",
                format!("{what} not found"),
            )]),
            CatalogError::Conflict(m) => ApiError::Conflict(m),
            CatalogError::Store(s) => s.into(),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match r {
            R::JsonDataError(e) => ApiError::Validation(vec![Problem::new("body", e.body_text())]),
            R::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
            R::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            R::BytesRejection(_) => ApiError::PayloadTooLarge,
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<CommissionError> for ApiError {
    fn from(e: CommissionError) -> Self {
        if e.is_retryable() {
            tracing::warn!(error = %e, "storage unavailable");
            return ApiError::Unavailable;
        }
        match e {
            CommissionError::Invalid(problems) => ApiError::Validation(problems),
            CommissionError::Conflict(message) => ApiError::Conflict(message),
            CommissionError::Job(e) => ApiError::Conflict(format!(
                "the commission job, run first, failed (nothing was stored): {e:#}"
            )),
            CommissionError::Store(e) => e.into(),
        }
    }
}

impl From<LedgerStoreError> for ApiError {
    fn from(e: LedgerStoreError) -> Self {
        match e {
            LedgerStoreError::Store(s) => s.into(),
            corrupt @ LedgerStoreError::Corrupt { .. } => ApiError::Internal(corrupt.to_string()),
        }
    }
}

impl From<CpaStatusError> for ApiError {
    fn from(e: CpaStatusError) -> Self {
        match e {
            CpaStatusError::Store(s) => s.into(),
            CpaStatusError::Ledger(l) => l.into(),
        }
    }
}

impl From<crate::services::fraud::quarantine::ReviewError> for ApiError {
    fn from(e: crate::services::fraud::quarantine::ReviewError) -> Self {
        use crate::services::fraud::quarantine::ReviewError;
        match e {
            ReviewError::NotQuarantined { .. } => ApiError::NotFound("quarantined entity"),
            ReviewError::AlreadyDecided { .. } => ApiError::Conflict(e.to_string()),
            ReviewError::Store(e) => e.into(),
        }
    }
}

impl From<crate::services::conversions::SubmitError> for ApiError {
    fn from(e: crate::services::conversions::SubmitError) -> Self {
        use crate::services::conversions::SubmitError;
        match e {
            SubmitError::Conflict(id) => ApiError::Conflict(format!(
                "event_id {id} was already used with a different payload"
            )),
            SubmitError::Invalid(problems) => ApiError::Validation(problems),
            SubmitError::Store(e) => e.into(),
        }
    }
}
