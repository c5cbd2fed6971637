//! The HTTP server loop: accepts connections up to a cap and serves each
//! with hyper under time limits, so that idle, half-open or trickling
//! clients cannot exhaust file descriptors or hold workers.
//!
//! Owns the connection-level bounds (documented in the README's limits):
//! at most `max_connections` open connections (one more is closed at once),
//! a request's headers must arrive within `header_read_timeout` (this also
//! closes a keep-alive connection idle that long), and a whole request —
//! body included — must be answered within `request_timeout` (a JSON 408
//! otherwise); an error answer to a request with a body says
//! `Connection: close` (the body may be unread). Graceful shutdown: stop accepting, let in-flight requests
//! finish. Must not know about routes (it serves any [`Router`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection-level bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// A request's headers must arrive within this (and a keep-alive
    /// connection idle this long is closed).
    pub header_read_timeout: Duration,
    /// A request, body included, must be answered within this.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = limits.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let has_body = has_body(&request);
            let mut response = match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => timed_out(limit),
            };
            // An error answer may leave the body unread (refused before
            // reading it): say the connection closes, so that the client
            // does not send its next request into the rest of this body.
            let status = response.status();
            if has_body && (status.is_client_error() || status.is_server_error()) {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            response
        },
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors or a transient error: back
                    // off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection refused: too many open connections"
            );
            drop(stream);
            continue;
        };
        // The client address, for the failed-authentication lockout.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let builder = Arc::clone(&builder);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("shutdown grace period over: closing the remaining connections");
        }
    }
    Ok(())
}

/// Whether a request carries a body (a non-zero `Content-Length`, or
/// `Transfer-Encoding`).
fn has_body(request: &axum::extract::Request) -> bool {
    let headers = request.headers();
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The JSON 408 of a request that took longer than `limit`; the connection
/// is closed (its body may be half read).
fn timed_out(limit: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (
        axum::http::StatusCode::REQUEST_TIMEOUT,
        axum::Json(serde_json::json!({
            "error": "request_timeout",
            "message": format!("the request was not complete within {} s", limit.as_secs()),
        })),
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
