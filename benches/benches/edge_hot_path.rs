//! The edge hot path, natively: short-code parse + link cache resolve (10k
//! links cached, lookup of a present code) + `Pipeline::handle` (geo, bot
//! screen, duplicate filter, hashes, click id, template expansion, record).
//!
//! ```text
//! cargo bench -p clickstitch-benches --bench edge_hot_path
//! ```
//!
//! Criterion reports means per request kind. Because the target is on the
//! p99 (<= 20 µs per request), the bench then times `EDGE_LATENCY_SAMPLES`
//! (default 200 000) individual calls of each kind with `Instant` and prints
//! p50/p90/p99/p99.9/max (the timer's own cost is printed too).
//!
//! `EDGE_HOT_PATH_ONLY=<n>` skips both and just runs `n` human requests
//! after setup, for instruction counting under valgrind (see
//! docs/benchmarks.md): the difference between two runs with different `n`
//! divided by the difference in `n` is the instruction count per request.

use std::hint::black_box;
use std::time::Instant;

use clickstitch_benches::edge::{EdgeFixture, Kind};
use clickstitch_benches::percentiles;
use criterion::{Criterion, Throughput};

fn bench_hot_path(c: &mut Criterion, warm_up: usize) {
    let mut group = c.benchmark_group("edge_hot_path");
    group.throughput(Throughput::Elements(1));
    for (name, kind) in [
        ("human_chrome_sub_ids", Kind::Human),
        ("bot_googlebot", Kind::Bot),
        ("geo_blocked_us", Kind::GeoBlocked),
    ] {
        let mut fixture = EdgeFixture::new();
        for _ in 0..warm_up {
            black_box(fixture.click(kind));
        }
        group.bench_function(name, |b| b.iter(|| black_box(fixture.click(kind))));
    }
    group.finish();
}

fn latency_distribution(samples: usize, warm_up: usize) {
    let timer_ns = {
        let mut v = Vec::with_capacity(10_000);
        for _ in 0..10_000 {
            let t = Instant::now();
            v.push(t.elapsed().as_nanos() as u64);
        }
        v.sort_unstable();
        percentiles::percentile(&v, 50.0)
    };
    println!();
    println!(
        "edge_hot_path latency distribution: {samples} individually timed calls per kind \
         (after {warm_up} warm-up calls; Instant overhead p50 = {timer_ns} ns, included)"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "kind", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, kind) in [
        ("human_chrome_sub_ids", Kind::Human),
        ("bot_googlebot", Kind::Bot),
        ("geo_blocked_us", Kind::GeoBlocked),
    ] {
        let mut fixture = EdgeFixture::new();
        for _ in 0..warm_up {
            black_box(fixture.click(kind));
        }
        let ns = percentiles::time_each(samples, || drop(black_box(fixture.click(kind))));
        let p99 = percentiles::print_row(name, 22, &ns);
        if kind == Kind::Human {
            println!(
                "  target p99 <= 20µs for the human path: {}",
                if p99 <= 20_000 { "MET" } else { "NOT MET" }
            );
            if cfg!(debug_assertions) {
                println!("  (debug build: figures are not meaningful; use cargo bench)");
            }
        }
    }
}

fn main() {
    if let Some(n) = std::env::var("EDGE_HOT_PATH_ONLY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let mut fixture = EdgeFixture::new();
        for _ in 0..n {
            black_box(fixture.click(Kind::Human));
        }
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then everything runs once, quickly.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    // Enough warm-up calls to fill the duplicate filter (200k) to its
    // steady state, where it evicts on every call.
    let warm_up = if benching { 250_000 } else { 1_000 };
    bench_hot_path(&mut criterion, warm_up);
    criterion.final_summary();
    let samples = std::env::var("EDGE_LATENCY_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 200_000 } else { 1_000 });
    latency_distribution(samples, warm_up);
}
