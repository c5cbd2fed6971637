//! Integration tests for the ClickHouse test harness: they start real servers.
//!
//! With `CLICKHOUSE_URL` set, the tests that need a server of their own (stop/restart, two
//! servers, process-death cleanup) are skipped, since an external server cannot be controlled.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clickstitch_testkit::net::{self, accepts_connections};
use clickstitch_testkit::{unique_database_name, ClickHouseServer};

/// Env var that turns [`helper_starts_a_server_and_exits_without_dropping_it`] into a real test.
const HELPER_ENV: &str = "CLICKSTITCH_TESTKIT_ORPHAN_HELPER";

fn external() -> bool {
    std::env::var("CLICKHOUSE_URL").is_ok_and(|u| !u.trim().is_empty())
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Waits until `condition` holds, for at most `timeout`.
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process with this pid still exists as a non-zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[test]
fn a_started_server_answers_queries() {
    let server = ClickHouseServer::start().expect("server starts");
    assert_eq!(server.query("SELECT 1 + 1").unwrap(), "2\n");
    let version = server.version().unwrap();
    assert!(
        version.chars().next().unwrap().is_ascii_digit(),
        "{version}"
    );

    let ping = net::http_get(
        &format!("{}/ping", server.http_url()),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!((ping.status, ping.text().as_str()), (200, "Ok.\n"));
    if !external() {
        assert!(server.http_url().starts_with("http://127.0.0.1:"));
        assert!(accepts_connections(server.tcp_port().unwrap()));
        // The configured time zone makes DateTime rendering deterministic.
        // (18.16 reports the zone as `Etc/UTC`.)
        let zone = server.query("SELECT timezone()").unwrap();
        assert!(zone == "UTC\n" || zone == "Etc/UTC\n", "{zone}");
    }
}

#[test]
fn a_failing_query_reports_the_status_and_the_server_message() {
    let server = ClickHouseServer::shared();
    let error = server
        .query("SELECT * FROM no_such_database.no_such_table")
        .unwrap_err()
        .to_string();
    assert!(error.contains("HTTP"), "{error}");
    assert!(error.contains("no_such"), "{error}");
}

#[test]
fn the_shared_server_is_started_once_and_gives_each_test_its_own_database() {
    let a = ClickHouseServer::shared();
    let b = ClickHouseServer::shared();
    assert!(std::ptr::eq(a, b));

    let db = a.create_database("testkit_shared").unwrap();
    a.query_in(
        &db,
        "CREATE TABLE t (n UInt32) ENGINE = MergeTree ORDER BY n",
    )
    .unwrap();
    a.query_in(&db, "INSERT INTO t VALUES (1), (2), (3)")
        .unwrap();
    assert_eq!(a.query_in(&db, "SELECT sum(n) FROM t").unwrap(), "6\n");
    // Extra URL parameters are passed on as settings.
    let limited = a
        .query_with_params(
            &[("max_result_rows", "1")],
            "SELECT number FROM numbers(10)",
        )
        .unwrap_err()
        .to_string();
    assert!(limited.contains("Limit for result exceeded"), "{limited}");
    a.drop_database(&db).unwrap();
}

#[test]
fn unique_database_names_can_be_created() {
    let server = ClickHouseServer::shared();
    let names: Vec<String> = (0..3).map(|_| unique_database_name("it-works")).collect();
    for name in &names {
        server.query(&format!("CREATE DATABASE {name}")).unwrap();
    }
    let listed = server.query("SHOW DATABASES").unwrap();
    for name in &names {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} missing in {listed}"
        );
        server.drop_database(name).unwrap();
    }
}

#[test]
fn a_stopped_server_refuses_connections_and_a_restarted_one_keeps_its_data() {
    if external() {
        return;
    }
    let mut server = ClickHouseServer::start().unwrap();
    let url = server.http_url();
    let tcp_port = server.tcp_port().unwrap();
    let db = server.create_database("restart").unwrap();
    server
        .query_in(
            &db,
            "CREATE TABLE clicks (id UInt64, ts DateTime, label String) \
             ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY id",
        )
        .unwrap();
    server
        .query_in(
            &db,
            "INSERT INTO clicks VALUES (1, '2024-05-01 10:00:00', 'a'), (2, '2024-05-01 11:00:00', 'b')",
        )
        .unwrap();

    server.stop().unwrap();
    assert_eq!(server.pid(), None);
    assert!(!accepts_connections(port_of(&url)), "HTTP port still open");
    assert!(!accepts_connections(tcp_port), "TCP port still open");
    let refused = server.query("SELECT 1").unwrap_err();
    let io = refused
        .chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .expect("an io::Error in the chain");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    server.stop().unwrap(); // stopping twice is fine

    server.restart().unwrap();
    assert_eq!(server.http_url(), url);
    assert_eq!(server.tcp_port(), Some(tcp_port));
    assert_eq!(
        server
            .query_in(&db, "SELECT id, label FROM clicks ORDER BY id")
            .unwrap(),
        "1\ta\n2\tb\n"
    );
    // A restart of a running server also works.
    server.restart().unwrap();
    assert_eq!(
        server.query_in(&db, "SELECT count() FROM clicks").unwrap(),
        "2\n"
    );
}

#[test]
fn two_servers_run_side_by_side_on_different_ports() {
    if external() {
        return;
    }
    let a = ClickHouseServer::start().unwrap();
    let b = ClickHouseServer::start().unwrap();
    assert_ne!(a.http_url(), b.http_url());
    assert_ne!(a.tcp_port(), b.tcp_port());
    assert_ne!(a.dir(), b.dir());

    a.query("CREATE TABLE default.only_in_a (n UInt8) ENGINE = Memory")
        .unwrap();
    assert_eq!(a.query("EXISTS TABLE default.only_in_a").unwrap(), "1\n");
    assert_eq!(b.query("EXISTS TABLE default.only_in_a").unwrap(), "0\n");
}

#[test]
fn dropping_a_server_kills_it_and_removes_its_directory() {
    if external() {
        return;
    }
    let server = ClickHouseServer::start().unwrap();
    let pid = server.pid().unwrap();
    let port = port_of(&server.http_url());
    let dir = server.dir().unwrap().to_path_buf();
    drop(server);
    assert!(!process_alive(pid));
    assert!(!accepts_connections(port));
    assert!(!dir.exists());
}

#[test]
fn stop_and_restart_are_refused_for_an_external_server() {
    let local = ClickHouseServer::shared();
    if external() {
        return;
    }
    let mut server = ClickHouseServer::connect(&local.http_url()).unwrap();
    assert!(server.is_external());
    assert_eq!(server.http_url(), local.http_url());
    assert_eq!(server.query("SELECT 1").unwrap(), "1\n");
    assert!(server.stop().is_err());
    assert!(server.restart().is_err());
    assert_eq!(server.pid(), None);
    drop(server);
    assert_eq!(local.query("SELECT 1").unwrap(), "1\n");
}

/// Not a test on its own: run by [`a_server_dies_with_the_test_process_that_leaked_it`] in a
/// child process, where it starts a server, reports it, and exits without dropping it.
#[test]
#[ignore = "helper for a_server_dies_with_the_test_process_that_leaked_it"]
fn helper_starts_a_server_and_exits_without_dropping_it() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let server = ClickHouseServer::start().unwrap();
    println!(
        "SERVER {} {} {}",
        server.pid().unwrap(),
        port_of(&server.http_url()),
        server.dir().unwrap().display()
    );
    if std::env::var(HELPER_ENV).as_deref() == Ok("abort") {
        std::process::abort();
    }
    std::mem::forget(server);
    std::process::exit(0);
}

fn run_leaking_helper(mode: &str) -> (u32, u16, std::path::PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_starts_a_server_and_exits_without_dropping_it",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, mode)
        .env_remove("CLICKHOUSE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.split_once("SERVER ").map(|(_, rest)| rest.to_owned()))
        .expect("the helper reports its server");
    child.wait().unwrap();
    let mut parts = line.split_whitespace();
    let pid = parts.next().unwrap().parse().unwrap();
    let port = parts.next().unwrap().parse().unwrap();
    let dir = parts.next().unwrap().into();
    (pid, port, dir)
}

#[test]
fn a_server_dies_with_the_test_process_that_leaked_it() {
    if external() {
        return;
    }
    for mode in ["exit", "abort"] {
        let (pid, port, dir) = run_leaking_helper(mode);
        assert!(
            eventually(Duration::from_secs(10), || !process_alive(pid)
                && !accepts_connections(port)),
            "server {pid} on port {port} survived its test process ({mode})"
        );
        assert!(
            eventually(Duration::from_secs(10), || !dir.exists()),
            "{} survived its test process ({mode})",
            dir.display()
        );
    }
}
