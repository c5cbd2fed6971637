//! Integration tests for the workerd harness (`clickstitch_testkit::workerd`): they start real
//! workerd processes from `node_modules` (run `npm ci` or `scripts/install-edge-toolchain.sh`
//! first) and build the edge worker with `scripts/build-edge.sh` (minutes from clean; set
//! `CLICKSTITCH_EDGE_BUNDLE=edge-worker/build` to reuse a bundle built by an earlier CI step).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clickstitch_testkit::workerd::{Workerd, WorkerdConfig, CF_HEADER};

/// Env var that turns [`helper_starts_workerd_and_waits_to_be_killed`] into a real test.
const HELPER_ENV: &str = "CLICKSTITCH_TESTKIT_WORKERD_ORPHAN_HELPER";

/// A parsed HTTP response: status and lower-cased header names.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET` over a fresh connection (no redirects followed), with extra headers.
fn get(base_url: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let authority = base_url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A loopback HTTP server answering every request `200 ok`, reporting each request line.
fn mock_upstream() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            // Skip the remaining headers (bodies are not needed here).
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = tx.send(request_line.trim().to_owned());
        }
    });
    (url, rx)
}

/// Whether a process with this pid still exists as a non-zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "123 (workerd) S ...".
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn the_edge_worker_bundle_runs_under_workerd_and_reaches_loopback_upstreams() {
    let (upstream_url, upstream_requests) = mock_upstream();
    let config = WorkerdConfig::edge_worker()
        .unwrap()
        .var("AGGREGATOR_URL", upstream_url)
        .var("CLICK_DELIVERY", "direct")
        .secret("EDGE_SECRET", "test-edge-secret")
        .secret("IDENTITY_SALT", "test-identity-salt");
    let workerd = Workerd::start(config).unwrap();

    let health = get(&workerd.url(), "/health", &[]);
    assert_eq!(health.status, 200, "{health:?}\n{}", workerd.logs());
    assert_eq!(health.body, "ok\n");

    // An unknown code makes the worker ask the "aggregator" (a loopback mock
    // answering a non-JSON 200): the request arrives, the answer is no link
    // definition, and the player gets a 503 rather than a wrong redirect.
    let response = get(
        &workerd.url(),
        "/abcdefghij",
        &[(CF_HEADER, r#"{"country":"DE"}"#)],
    );
    assert_eq!(
        upstream_requests
            .recv_timeout(Duration::from_secs(5))
            .unwrap(),
        "GET /edge/v1/links/abcdefghij HTTP/1.1"
    );
    assert_eq!(response.status, 503, "{response:?}\n{}", workerd.logs());
    assert!(response.header("location").is_none());
}

#[test]
fn the_hello_redirect_js_worker_runs_under_workerd() {
    let workerd = Workerd::start(WorkerdConfig::hello_redirect()).unwrap();
    let response = get(&workerd.url(), "/anything", &[]);
    assert_eq!(response.status, 302, "{response:?}\n{}", workerd.logs());
    assert_eq!(
        response.header("location"),
        Some("https://example.com/landing")
    );
}

#[test]
fn vars_secrets_cf_and_loopback_fetch_reach_a_js_worker() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("echo.js");
    std::fs::write(
        &script,
        r#"export default {
  async fetch(request, env) {
    const upstream = await fetch(env.UPSTREAM + "/from-worker");
    return Response.json({
      plain: env.PLAIN,
      quoted: env.QUOTED,
      secret: env.SECRET,
      country: request.cf && request.cf.country,
      asn: request.cf && request.cf.asn,
      upstream: upstream.status,
      cfHeaderVisible: request.headers.has("x-test-cf"),
    });
  },
};
"#,
    )
    .unwrap();
    let (upstream, upstream_requests) = mock_upstream();
    let config = WorkerdConfig::js_module(&script)
        .var("PLAIN", "hello")
        .var("QUOTED", "a \"quoted\" \\ value\nwith newline")
        .var("UPSTREAM", upstream)
        .secret("SECRET", "s3cr3t");
    let workerd = Workerd::start(config).unwrap();

    let response = get(
        &workerd.url(),
        "/",
        &[(CF_HEADER, r#"{"country":"FR","asn":3215}"#)],
    );
    assert_eq!(response.status, 200, "{response:?}\n{}", workerd.logs());
    let body = response.body.trim();
    // The body may be chunked; the JSON object is the part between the outer braces.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    assert_eq!(
        json,
        r#"{"plain":"hello","quoted":"a \"quoted\" \\ value\nwith newline","secret":"s3cr3t","country":"FR","asn":3215,"upstream":200,"cfHeaderVisible":false}"#
    );
    assert_eq!(
        upstream_requests
            .recv_timeout(Duration::from_secs(5))
            .unwrap(),
        "GET /from-worker HTTP/1.1"
    );
}

#[test]
fn dropping_workerd_kills_the_process_and_frees_the_port() {
    let workerd = Workerd::start(WorkerdConfig::hello_redirect()).unwrap();
    let pid = workerd.pid().unwrap();
    let port = workerd.port();
    let config_path = workerd.config_path().to_path_buf();
    assert!(process_alive(pid));
    drop(workerd);
    assert!(!process_alive(pid), "workerd {pid} survived drop");
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    assert!(!config_path.exists(), "temporary directory not deleted");
}

#[test]
fn two_workerd_instances_get_different_ports() {
    let a = Workerd::start(WorkerdConfig::hello_redirect()).unwrap();
    let b = Workerd::start(WorkerdConfig::hello_redirect()).unwrap();
    assert_ne!(a.port(), b.port());
    assert_eq!(get(&a.url(), "/", &[]).status, 302);
    assert_eq!(get(&b.url(), "/", &[]).status, 302);
}

#[test]
fn a_broken_worker_fails_start_with_workerd_log_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.js");
    std::fs::write(&script, "export default { fetch( { syntax error\n").unwrap();
    let error = Workerd::start(WorkerdConfig::js_module(&script))
        .unwrap_err()
        .to_string();
    assert!(error.contains("workerd exited"), "{error}");
    assert!(error.contains("SyntaxError"), "{error}");
}

#[test]
fn workerd_dies_when_the_test_process_is_killed() {
    // Run the helper below in a child test process, learn workerd's pid, SIGKILL the child (so
    // no destructor runs) and expect the watchdog to kill workerd.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_starts_workerd_and_waits_to_be_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (pid, config_path): (u32, PathBuf) = loop {
        let line = lines
            .next()
            .expect("helper exited before printing the pid")
            .unwrap();
        // libtest prints "test <name> ... " without a newline before the helper's output.
        if let Some((_, rest)) = line.split_once("workerd-pid=") {
            let (pid, config) = rest.trim().split_once(' ').unwrap();
            break (pid.parse().unwrap(), PathBuf::from(config));
        }
    };
    assert!(config_path.exists());
    assert!(process_alive(pid));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !process_alive(pid)),
        "workerd {pid} outlived its test process"
    );
    assert!(
        eventually(Duration::from_secs(10), || !config_path.exists()),
        "the watchdog did not delete {}",
        config_path.display()
    );
}

/// Not a test on its own: run by [`workerd_dies_when_the_test_process_is_killed`].
#[test]
#[ignore = "helper for workerd_dies_when_the_test_process_is_killed"]
fn helper_starts_workerd_and_waits_to_be_killed() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let workerd = Workerd::start(WorkerdConfig::hello_redirect()).unwrap();
    println!(
        "workerd-pid={} {}",
        workerd.pid().unwrap(),
        workerd.config_path().display()
    );
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
    drop(workerd);
}
