//! Clickstitch benchmarks: shared fixtures for the edge hot-path bench
//! (`benches/edge_hot_path.rs`) and the ingest load generator
//! (`src/bin/ingest-load.rs`).
//!
//! * [`edge`]: a warm edge isolate natively: a link cache holding 10k links,
//!   a pipeline with a full-size duplicate filter, and realistic requests
//!   (Chrome with sub-ids, a crawler, a geo-blocked visitor).
//! * [`clicks`]: fast generation of valid `POST /edge/v1/clicks` bodies from
//!   click templates pre-serialised with `serde_json`, so that only the
//!   per-click unique parts (click id, timestamp, identity hash) are written
//!   per click.
//! * [`percentiles`] and [`proc_cpu`]: latency summaries and CPU accounting
//!   from `/proc`.

pub mod edge {
    //! The edge hot path outside workerd: `ShortCode::parse` of the path,
    //! `LinkCache::lookup`, then `Pipeline::handle` (geo, bot screen, duplicate
    //! filter, identity and device hashes, click id, template expansion, the
    //! record to deliver).

    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use clickstitch_edge::link_cache::{LinkCache, Lookup};
    use clickstitch_edge::pipeline::{ClickRequest, Outcome, Pipeline};
    use clickstitch_shared::{CountryCode, LinkDefinition, ShortCode};

    /// Chrome 131 on Windows, as sent by real browsers (111 bytes).
    pub const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    /// Googlebot.
    pub const BOT_UA: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    /// Links in the cache (the runtime allows up to 50k).
    pub const LINKS: usize = 10_000;
    /// Duplicate-filter capacity, as in the runtime (`DEDUP_CAPACITY`).
    pub const DEDUP_CAPACITY: usize = 200_000;
    /// A destination with several macros, like real casino tracking links.
    pub const DESTINATION: &str = "https://lucky.example/join?cid={click_id}&aff={affiliate_id}&camp={campaign_id}&s1={sub1}&s2={sub2}&geo={country}";

    /// Which kind of request to send.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// Chrome from Germany with three sub-ids: redirected with a click id.
        Human,
        /// Googlebot: redirected without a click id, recorded as a bot.
        Bot,
        /// A visitor from a restricted country: 451 and a geo-block record.
        GeoBlocked,
    }

    /// The code of link `i` (10 base62 characters, like generated codes).
    pub fn code(i: usize) -> String {
        format!("Lk{i:08}")
    }

    /// A definition as the aggregator serves it (`GET /edge/v1/links/{code}`).
    pub fn definition(i: usize) -> LinkDefinition {
        serde_json::from_value(serde_json::json!({
            "code": code(i),
            "brand_id": format!("0190a1b2-0000-7000-8000-{:012x}", 1 + i % 7),
            "affiliate_id": format!("0190a1b2-0000-7000-8001-{:012x}", i % 500),
            "sub_affiliate_id": if i.is_multiple_of(3) {
                serde_json::Value::String(format!("0190a1b2-0000-7000-8002-{i:012x}"))
            } else {
                serde_json::Value::Null
            },
            "campaign_id": format!("0190a1b2-0000-7000-8003-{:012x}", i % 900),
            "destination": DESTINATION,
            "jurisdiction": {"name": "MGA", "restricted_countries": ["US", "FR", "ES", "NL"]},
            "geo": {"blocked_countries": ["KP"]},
            "version": 1_750_000_000_000_u64
        }))
        .expect("a valid link definition")
    }

    /// A warm isolate: cache, pipeline, clock and random source.
    #[derive(Debug)]
    pub struct EdgeFixture {
        cache: LinkCache,
        pipeline: Pipeline,
        codes: Vec<String>,
        now_ms: u64,
        rng: u64,
        n: u64,
    }

    impl Default for EdgeFixture {
        fn default() -> Self {
            Self::new()
        }
    }

    impl EdgeFixture {
        /// A cache of [`LINKS`] fresh links and a fresh pipeline.
        pub fn new() -> Self {
            let now_ms = 1_750_000_000_000;
            let mut cache = LinkCache::new(24 * 3600 * 1000, 50_000);
            let mut codes = Vec::with_capacity(LINKS);
            for i in 0..LINKS {
                let def = definition(i);
                codes.push(def.code.to_string());
                cache.insert(def.code.clone(), Some(def), now_ms);
            }
            Self {
                cache,
                pipeline: Pipeline::new(b"bench-identity-salt-0123456789", DEDUP_CAPACITY),
                codes,
                now_ms,
                rng: 0x9E37_79B9_7F4A_7C15,
                n: 0,
            }
        }

        fn next_random(&mut self) -> u64 {
            // xorshift64*: stands in for crypto.getRandomValues.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// One request of `kind` through the whole hot path. Each call uses
        /// the next link (a present code), a new visitor IP (so the duplicate
        /// filter fills up and evicts as in production) and advances the
        /// clock by 1 ms every 16 calls.
        pub fn click(&mut self, kind: Kind) -> Outcome {
            self.n += 1;
            let r = self.next_random();
            let now_ms = self.now_ms + self.n / 16;
            let code_text = &self.codes[(self.n as usize).wrapping_mul(7919) % self.codes.len()];
            let code = ShortCode::parse(code_text).expect("a valid code");
            let def: Arc<LinkDefinition> = match self.cache.lookup(&code, now_ms) {
                Lookup::Fresh(d) | Lookup::Stale(d) => d,
                other => panic!("link {code_text} not cached: {other:?}"),
            };
            let ip = IpAddr::V4(Ipv4Addr::from(0x5D00_0000_u32 | (r as u32 & 0x00FF_FFFF)));
            let (user_agent, country) = match kind {
                Kind::Human => (CHROME_UA, CountryCode::parse("DE").ok()),
                Kind::Bot => (BOT_UA, CountryCode::parse("DE").ok()),
                Kind::GeoBlocked => (CHROME_UA, CountryCode::parse("US").ok()),
            };
            let req = ClickRequest {
                is_head: false,
                query: "sub1=facebook&sub2=story_42&sub3=ad-7731&utm_source=fb",
                ip: Some(ip),
                user_agent: Some(user_agent),
                referrer: "https://l.facebook.com/",
                accept_language: "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
                sec_ch_ua:
                    "\"Google Chrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
                sec_ch_ua_platform: "\"Windows\"",
                sec_ch_ua_mobile: "?0",
                country,
                identity_unverified: false,
                region: "Hesse",
                city: "Frankfurt am Main",
                asn: 3320,
                colo: "FRA",
                tls_client_ciphers_sha1: "kXVpZP9sUAhNHqVnMiCbYb2bXbM=",
                tls_client_extensions_sha1: "OWFiM2I5ZGU5NTc5YmE0MWMzYTA=",
                verified_bot: false,
                visitor_id: None,
            };
            let bytes = r.to_le_bytes();
            let random = [
                bytes[0],
                bytes[1],
                bytes[2],
                bytes[3],
                bytes[4],
                bytes[5],
                bytes[6],
                bytes[7],
                bytes[3] ^ 0x5A,
                bytes[5] ^ 0xA5,
            ];
            self.pipeline.handle(&def, &req, now_ms, random)
        }
    }
}

pub mod clicks {
    //! Valid click batches for `POST /edge/v1/clicks`, generated fast.
    //!
    //! Each [`ClickTemplate`] is a complete [`RawClick`] serialised once with
    //! `serde_json`; a click is written as the template with its own click id
    //! (UUIDv7 from [`ClickIdGenerator`] at the current time), `clicked_at_ms`
    //! and identity hash spliced in. Field sizes are realistic: user agents of
    //! 100–140 bytes, referrers, five sub-ids, 32-hex hashes.

    use std::fmt::Write as _;

    use clickstitch_shared::{ClickId, ClickIdGenerator, RawClick};

    /// What links the clicks belong to (ids as the admin API returned them).
    #[derive(Debug, Clone)]
    pub struct LinkIds {
        /// Short code.
        pub code: String,
        /// Brand id.
        pub brand_id: String,
        /// The top-level affiliate owning the link.
        pub affiliate_id: String,
        /// Campaign id.
        pub campaign_id: String,
    }

    const USER_AGENTS: [&str; 6] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ];
    const REFERRERS: [&str; 5] = [
        "https://l.facebook.com/",
        "https://www.google.com/",
        "https://news.example/sport/football/2024/11/premier-league-preview-week-13?utm_source=tw",
        "https://t.co/",
        "",
    ];
    const PLACES: [(&str, &str, &str, u32, &str, &str); 6] = [
        (
            "DE",
            "Hesse",
            "Frankfurt am Main",
            3320,
            "FRA",
            "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
        ),
        ("GB", "England", "London", 2856, "LHR", "en-GB,en;q=0.9"),
        (
            "BR",
            "Sao Paulo",
            "São Paulo",
            28573,
            "GRU",
            "pt-BR,pt;q=0.9,en;q=0.8",
        ),
        (
            "CA",
            "Ontario",
            "Toronto",
            812,
            "YYZ",
            "en-CA,en;q=0.9,fr-CA;q=0.8",
        ),
        (
            "IN",
            "Maharashtra",
            "Mumbai",
            55836,
            "BOM",
            "en-IN,en;q=0.9,hi;q=0.8",
        ),
        (
            "SE",
            "Stockholm County",
            "Stockholm",
            3301,
            "ARN",
            "sv-SE,sv;q=0.9,en;q=0.8",
        ),
    ];

    /// The start of every serialised [`RawClick`] with an empty click id and
    /// a zero timestamp; templates are stored without it.
    const HEAD: &str = r#"{"click_id":"","clicked_at_ms":0,"#;
    const IDENTITY_KEY: &str = r#""identity_hash":""#;
    const IP_KEY: &str = r#""ip":""#;
    /// First octets of busy public IPv4 ranges (European and US ISPs).
    const FIRST_OCTETS: [u8; 24] = [
        24, 31, 37, 46, 62, 73, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94,
        95,
    ];

    /// One click shape, serialised, split around the per-click parts.
    #[derive(Debug, Clone)]
    pub struct ClickTemplate {
        /// From `"link_code"` up to and including `"ip":"`.
        before_ip: String,
        /// Whether the visitor is on IPv6.
        ipv6: bool,
        /// From the IP's closing quote up to and including `"identity_hash":"`.
        before_identity: String,
        /// From the identity hash's closing quote to the closing `}`.
        after_identity: String,
    }

    impl ClickTemplate {
        /// Serialises `raw` (its click id, timestamp, IP and identity hash
        /// are replaced per click; the IP keeps its family).
        pub fn new(raw: &RawClick) -> Self {
            let mut raw = raw.clone();
            let ipv6 = raw.ip.contains(':');
            raw.click_id.clear();
            raw.clicked_at_ms = 0;
            raw.ip.clear();
            raw.identity_hash.clear();
            let json = serde_json::to_string(&raw).expect("a RawClick serialises");
            let rest = json
                .strip_prefix(HEAD)
                .expect("RawClick serialises click_id and clicked_at_ms first");
            let ip_at = rest.find(IP_KEY).expect("RawClick has ip") + IP_KEY.len();
            let at =
                rest.find(IDENTITY_KEY).expect("RawClick has identity_hash") + IDENTITY_KEY.len();
            Self {
                before_ip: rest[..ip_at].to_owned(),
                ipv6,
                before_identity: rest[ip_at..at].to_owned(),
                after_identity: rest[at..].to_owned(),
            }
        }

        /// Appends this click with `id` and `identity` (16 bytes) to `out`;
        /// the visitor's IP is drawn from `identity` too, over millions of
        /// /24s (IPv4) or /64s (IPv6), as real traffic is spread.
        pub fn write(&self, out: &mut String, id: ClickId, identity: u128) {
            out.push_str(r#"{"click_id":""#);
            let _ = write!(out, "{id}");
            out.push_str(r#"","clicked_at_ms":"#);
            let _ = write!(out, "{},", id.timestamp_ms());
            out.push_str(&self.before_ip);
            let bits = (identity >> 64) as u64;
            if self.ipv6 {
                let _ = write!(
                    out,
                    "2a02:{:x}:{:x}:{:x}::{:x}",
                    0x8100 + (bits & 0xff),
                    (bits >> 8) & 0xffff,
                    (bits >> 24) & 0xffff,
                    (bits >> 40) & 0xffff
                );
            } else {
                let first = FIRST_OCTETS[(bits % FIRST_OCTETS.len() as u64) as usize];
                let _ = write!(
                    out,
                    "{first}.{}.{}.{}",
                    (bits >> 8) & 0xff,
                    (bits >> 16) & 0xff,
                    1 + (bits >> 24) % 254
                );
            }
            out.push_str(&self.before_identity);
            let _ = write!(out, "{identity:032x}");
            out.push_str(&self.after_identity);
        }
    }

    /// `n` distinct realistic click shapes over `links`.
    pub fn templates(links: &[LinkIds], n: usize) -> Vec<ClickTemplate> {
        assert!(!links.is_empty(), "at least one link");
        (0..n)
            .map(|i| {
                let link = &links[i % links.len()];
                let (country, region, city, asn, colo, lang) = PLACES[i % PLACES.len()];
                let raw = RawClick {
                    visitor_id: format!("{:032x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15),
                    click_id: String::new(),
                    clicked_at_ms: 0,
                    link_code: link.code.clone(),
                    brand_id: link.brand_id.clone(),
                    affiliate_id: link.affiliate_id.clone(),
                    sub_affiliate_id: String::new(),
                    campaign_id: link.campaign_id.clone(),
                    sub1: ["facebook", "google", "tiktok", "newsletter"][i % 4].to_owned(),
                    sub2: format!("story_{}", i % 97),
                    sub3: format!("ad-{}", 7000 + i % 331),
                    sub4: if i.is_multiple_of(2) {
                        "mobile".into()
                    } else {
                        String::new()
                    },
                    sub5: if i.is_multiple_of(5) {
                        format!("x{i}")
                    } else {
                        String::new()
                    },
                    country: country.to_owned(),
                    region: region.to_owned(),
                    city: city.to_owned(),
                    asn,
                    colo: colo.to_owned(),
                    ip: if i % 4 == 3 {
                        format!("2a02:8108:{:x}:{:x}::1", i % 65_536, (i * 31) % 65_536)
                    } else {
                        format!(
                            "93.{}.{}.{}",
                            184 + i % 40,
                            (i * 7) % 256,
                            (i * 13) % 254 + 1
                        )
                    },
                    user_agent: USER_AGENTS[i % USER_AGENTS.len()].to_owned(),
                    referrer: REFERRERS[i % REFERRERS.len()].to_owned(),
                    accept_language: lang.to_owned(),
                    device_fingerprint: format!(
                        "{:032x}",
                        (i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
                    ),
                    identity_hash: String::new(),
                    is_bot: false,
                    bot_reason: String::new(),
                    is_duplicate: i % 10 == 9,
                };
                ClickTemplate::new(&raw)
            })
            .collect()
    }

    /// Writes click batches: one per caller (task), each with its own id
    /// generator and random source.
    #[derive(Debug)]
    pub struct BatchWriter {
        ids: ClickIdGenerator,
        rng: u64,
        next: usize,
    }

    impl BatchWriter {
        /// A writer seeded with `seed` (use a different one per task).
        pub fn new(seed: u64) -> Self {
            Self {
                ids: ClickIdGenerator::new(),
                rng: seed | 1,
                next: 0,
            }
        }

        fn random(&mut self) -> u64 {
            // splitmix64
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Replaces `out` with a batch body of `n` fresh clicks at `now_ms`.
        pub fn write_batch(
            &mut self,
            out: &mut String,
            templates: &[ClickTemplate],
            n: usize,
            now_ms: u64,
        ) {
            out.clear();
            out.push_str(r#"{"clicks":["#);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                let (a, b) = (self.random(), self.random());
                let mut random = [0u8; 10];
                random[..8].copy_from_slice(&a.to_le_bytes());
                random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
                let id = self.ids.next_id(now_ms, random);
                let identity = (u128::from(b) << 64) | u128::from(a ^ b.rotate_left(17));
                let template = &templates[self.next % templates.len()];
                self.next = self.next.wrapping_add(1);
                template.write(out, id, identity);
            }
            out.push_str(r#"],"geo_blocks":[]}"#);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use clickstitch_shared::{Click, ClickBatch};

        fn links() -> Vec<LinkIds> {
            vec![LinkIds {
                code: "aZ3k9Qx2Lm".into(),
                brand_id: "0190a1b2-0000-7000-8000-000000000001".into(),
                affiliate_id: "0190a1b2-0000-7000-8000-000000000002".into(),
                campaign_id: "0190a1b2-0000-7000-8000-000000000003".into(),
            }]
        }

        #[test]
        fn generated_batches_are_valid_unique_clicks_of_realistic_size() {
            let t = templates(&links(), 64);
            let mut w = BatchWriter::new(42);
            let mut body = String::new();
            let now = 1_750_000_000_000;
            w.write_batch(&mut body, &t, 500, now);
            let batch: ClickBatch = serde_json::from_str(&body).expect("a batch");
            assert_eq!(batch.clicks.len(), 500);
            let mut ids = std::collections::HashSet::new();
            for raw in batch.clicks {
                assert!(ids.insert(raw.click_id.clone()));
                assert!(raw.clicked_at_ms >= now && raw.clicked_at_ms < now + 5);
                assert!(raw.user_agent.len() >= 80);
                let click = Click::try_from(raw).expect("valid click");
                assert!(!click.bot.is_bot());
            }
            let per_click = body.len() / 500;
            assert!(
                (500..900).contains(&per_click),
                "{per_click} bytes per click"
            );
        }
    }
}

pub mod percentiles {
    //! Nearest-rank percentiles of sorted samples.

    /// Percentile of sorted `values` (nearest rank); 0 when empty.
    pub fn percentile(sorted: &[u64], p: f64) -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        // The epsilon keeps e.g. 99.9% of 1000 at rank 999 despite rounding.
        let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    /// Summary of sorted `values`: p50, p90, p99, p99.9, max.
    pub fn percentiles(sorted: &[u64]) -> [u64; 5] {
        [
            percentile(sorted, 50.0),
            percentile(sorted, 90.0),
            percentile(sorted, 99.0),
            percentile(sorted, 99.9),
            sorted.last().copied().unwrap_or(0),
        ]
    }

    /// Times `samples` calls of `call` one by one: nanoseconds each, sorted
    /// (`Instant` overhead included).
    pub fn time_each(samples: usize, mut call: impl FnMut()) -> Vec<u64> {
        let mut ns = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = std::time::Instant::now();
            call();
            ns.push(t.elapsed().as_nanos() as u64);
        }
        ns.sort_unstable();
        ns
    }

    /// Prints one row `name  mean p50 p90 p99 p99.9 max` (µs) of sorted
    /// `ns`, the name padded to `width`; returns the p99 in ns.
    pub fn print_row(name: &str, width: usize, sorted_ns: &[u64]) -> u64 {
        let mean = sorted_ns.iter().sum::<u64>() as f64 / sorted_ns.len().max(1) as f64;
        let [p50, p90, p99, p999, max] = percentiles(sorted_ns);
        let us = |v: u64| format!("{:.2}µs", v as f64 / 1000.0);
        println!(
            "{name:<width$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("{:.2}µs", mean / 1000.0),
            us(p50),
            us(p90),
            us(p99),
            us(p999),
            us(max)
        );
        p99
    }
}

pub mod proc_cpu {
    //! CPU time from `/proc` (Linux): per process and machine-wide.

    /// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
    pub const TICKS_PER_SEC: f64 = 100.0;

    /// User + system CPU seconds of process `pid` (all its threads).
    pub fn process_cpu_secs(pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may
        // contain spaces: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / TICKS_PER_SEC)
    }

    /// CPU seconds of this process.
    pub fn self_cpu_secs() -> Option<f64> {
        process_cpu_secs(std::process::id())
    }

    /// Machine-wide (busy, total) CPU seconds summed over all cores since
    /// boot, from `/proc/stat` (busy excludes idle and iowait).
    pub fn machine_cpu_secs() -> Option<(f64, f64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 5 {
            return None;
        }
        let total: f64 = v.iter().sum();
        let idle = v[3] + v[4];
        Some(((total - idle) / TICKS_PER_SEC, total / TICKS_PER_SEC))
    }

    /// Number of online CPUs.
    pub fn cpus() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentiles::percentiles(&v), [500, 900, 990, 999, 1000]);
        assert_eq!(percentiles::percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_edge_fixture_redirects_humans_and_blocks_restricted_countries() {
        use clickstitch_edge::pipeline::Answer;
        let mut f = edge::EdgeFixture::new();
        match f.click(edge::Kind::Human).answer {
            Answer::Redirect(url) => {
                assert!(url.starts_with("https://lucky.example/join?cid=0"), "{url}");
                assert!(url.contains("&s1=facebook&s2=story_42&geo=DE"), "{url}");
            }
            other => panic!("{other:?}"),
        }
        match f.click(edge::Kind::Bot).answer {
            Answer::Redirect(url) => assert!(url.starts_with("https://lucky.example/join?cid=&")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            f.click(edge::Kind::GeoBlocked).answer,
            Answer::UnavailableForLegalReasons
        );
    }

    #[test]
    fn cpu_accounting_reads_proc() {
        assert!(proc_cpu::self_cpu_secs().is_some());
        let (busy, total) = proc_cpu::machine_cpu_secs().expect("/proc/stat");
        assert!(busy <= total);
    }
}
