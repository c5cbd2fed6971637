//! Connection-level bounds on the real server: clients that never finish
//! their headers are disconnected, a body that trickles gets a JSON 408,
//! and connections beyond the cap are closed at once while the ones inside
//! it are served.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_configured, TestApp, OPERATOR_TOKEN};

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (or `limit` passes); what arrived.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_configured(|s| s.server.header_read_timeout_secs = 1).await;
    let mut slow = TcpStream::connect(host(&app)).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let closed = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "still open after 10 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Everyone else is served.
    let r = app
        .http
        .get(format!("{}/health", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_body_that_trickles_past_the_request_timeout_gets_a_json_408() {
    let app = spawn_app_configured(|s| s.server.request_timeout_secs = 1).await;
    let mut slow = TcpStream::connect(host(&app)).await.expect("connect");
    let head = format!(
        "POST /admin/v1/brands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\": "
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert_eq!(app.count("brands"), 0, "nothing stored");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_the_others_are_served() {
    let app = spawn_app_configured(|s| {
        s.server.max_connections = 4;
        s.server.header_read_timeout_secs = 30;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(host(&app)).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(host(&app)).await.expect("connect");
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert_eq!(answer.as_deref(), Some(""), "closed without an answer");

    // The connections inside the cap are served.
    idle[0]
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut idle[0], Duration::from_secs(5))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Freed slots take new connections again.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .http
        .get(format!("{}/health", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn every_error_answer_is_json_even_from_the_router_and_the_body_limit() {
    let app = spawn_app_configured(|s| s.server.max_body_bytes = 1024).await;
    let json = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let body: serde_json::Value = r.json().await.expect("a JSON body");
        (status, body, allow)
    };
    let (s, body, _) = json(
        app.http
            .get(format!("{}/no/such/route", app.address))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (404, Some("not_found")));
    let (s, body, allow) = json(
        app.http
            .delete(format!("{}/health", app.address))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(allow.is_some_and(|a| a.contains("GET")), "Allow is kept");
    let (s, body, _) = json(
        app.http
            .post(format!("{}/admin/v1/brands", app.address))
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body(format!("{{\"name\": \"{}\"}}", "x".repeat(4096)))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(s, 413, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (s, body, _) = json(
        app.http
            .post(format!("{}/edge/v1/clicks", app.address))
            .bearer_auth(crate::helpers::EDGE_SECRET)
            .header("content-type", "application/json")
            .body(format!("{{\"clicks\": [{}]}}", vec!["{}"; 2_000].join(",")))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(s, 413, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn an_error_before_the_body_is_read_closes_the_connection_instead_of_misreading_it() {
    let app = spawn_app_configured(|_| {}).await;
    let mut client = TcpStream::connect(host(&app)).await.expect("connect");
    // A body the server refuses unread (wrong credentials), followed at
    // once by the client's next request on the same connection.
    let body = "x".repeat(64 * 1024);
    let request = format!(
        "POST /edge/v1/clicks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-secret-0123456789\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut client, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        !answer.contains("HTTP/1.1 400"),
        "the rest of the body was never parsed as a request: {answer}"
    );
}
