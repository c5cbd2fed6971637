//! Bot screening, natively: `bot::screen` per user agent over the corpora of
//! `shared/tests/bot_corpus.rs`, and the one-off compile of the lists
//! (`bot::warm_up`).
//!
//! ```text
//! cargo bench -p clickstitch-benches --bench bot_screening -- --measurement-time 3
//! ```
//!
//! 1. `BOT_WARM_UP_RUNS` (default 10) fresh processes (this binary again,
//!    with `BOT_SCREENING_WARM_UP_ONLY=1`) each time their first
//!    `bot::warm_up()`: compiling every pattern, once per process or worker
//!    isolate.
//! 2. Criterion, one group per set, throughput in user agents (each
//!    iteration screens every user agent of the set once, so the per-UA cost
//!    is the mean divided by the set size, or 1 / criterion's elem/s):
//!    `browsers` (npm `user-agents`, 952 current browser user agents),
//!    `in_app` (Device Detector's in-app browser fixtures), `bots` (the
//!    crawler list's example user agents).
//! 3. Per user agent (the minimum of 5 calls each, `Instant` overhead
//!    included): p50/p90/p99/p99.9/max over each set, Device Detector's
//!    browser sample too, and the slowest user agents.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use clickstitch_benches::percentiles;
use clickstitch_shared::bot;
use criterion::{Criterion, Throughput};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path)
}

/// The user agents of a corpus file (`#` comments skipped; for `.tsv`, the
/// second column).
fn corpus(name: &str) -> Vec<String> {
    let path = data(&format!("tests/data/{name}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/update-ua-corpora.sh)", path.display()));
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('\t').map_or(l, |(_, ua)| ua).to_owned())
        .collect()
}

fn crawler_examples() -> Vec<String> {
    let path = data("data/crawler-user-agents.json");
    let text = std::fs::read_to_string(&path).expect("the vendored crawler list");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
    entries
        .iter()
        .flat_map(|e| e["instances"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_str().map(str::to_owned))
        .collect()
}

fn warm_up_runs(runs: usize) {
    let exe = std::env::current_exe().expect("own path");
    let mut us: Vec<f64> = (0..runs)
        .map(|_| {
            let out = Command::new(&exe)
                .env("BOT_SCREENING_WARM_UP_ONLY", "1")
                .output()
                .expect("run self");
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("unexpected child output {text:?}"))
        })
        .collect();
    us.sort_by(f64::total_cmp);
    println!(
        "bot::warm_up (first call in a fresh process), {runs} runs: \
         min {:.2} ms, median {:.2} ms, max {:.2} ms",
        us[0] / 1000.0,
        us[us.len() / 2] / 1000.0,
        us[us.len() - 1] / 1000.0
    );
}

fn bench_sets(c: &mut Criterion, sets: &[(&str, Vec<String>)]) {
    bot::warm_up();
    for (name, uas) in sets {
        let mut group = c.benchmark_group(format!("bot_screening/{name}"));
        group.throughput(Throughput::Elements(uas.len() as u64));
        group.bench_function(format!("{}_user_agents", uas.len()), |b| {
            b.iter(|| {
                for ua in uas {
                    black_box(bot::screen(false, Some(black_box(ua))));
                }
            })
        });
        group.finish();
    }
}

fn per_user_agent(sets: &[(&str, Vec<String>)]) {
    println!();
    println!("per user agent (minimum of 5 calls each; Instant overhead included):");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "set", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut slowest: Vec<(u64, &str)> = Vec::new();
    for (name, uas) in sets {
        let mut ns: Vec<u64> = uas
            .iter()
            .map(|ua| {
                let ns = (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        black_box(bot::screen(false, Some(black_box(ua))));
                        t.elapsed().as_nanos() as u64
                    })
                    .min()
                    .unwrap_or(0);
                slowest.push((ns, ua));
                ns
            })
            .collect();
        ns.sort_unstable();
        percentiles::print_row(&format!("{name} ({})", uas.len()), 34, &ns);
    }
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    println!("slowest:");
    for (ns, ua) in slowest.iter().take(3) {
        let ua: String = ua.chars().take(140).collect();
        println!("  {:.2}µs  {ua}", *ns as f64 / 1000.0);
    }
}

fn main() {
    if std::env::var_os("BOT_SCREENING_WARM_UP_ONLY").is_some() {
        let t = Instant::now();
        bot::warm_up();
        println!("{}", t.elapsed().as_nanos() as f64 / 1000.0);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then everything runs once, quickly.
    let benching = std::env::args().any(|a| a == "--bench");
    let runs = std::env::var("BOT_WARM_UP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10 } else { 1 });
    warm_up_runs(runs);
    let sets = vec![
        ("browsers", corpus("browsers.user-agents.txt")),
        ("in_app", corpus("in-app.device-detector.tsv")),
        ("bots", crawler_examples()),
    ];
    let mut criterion = Criterion::default().configure_from_args();
    bench_sets(&mut criterion, &sets);
    criterion.final_summary();
    let mut all = sets;
    all.push((
        "browsers_device_detector",
        corpus("browsers.device-detector.txt"),
    ));
    per_user_agent(&all);
    if cfg!(debug_assertions) {
        println!("(debug build: figures are not meaningful; use cargo bench)");
    }
}
