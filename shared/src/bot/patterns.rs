//! The pattern lists and the engine that matches all of them at once.
//!
//! Every pattern is matched case-insensitively against the lower-cased user
//! agent: patterns are lower-cased too (outside escapes, so `\S` stays `\S`).
//! Then they are split three ways, because one alternation of ~1 900 regexes
//! thrashes the regex crate's lazy DFA on varied traffic (~140 µs per user
//! agent against ~1.5 µs split, over the test corpora interleaved; measured by
//! the ignored test below, docs/benchmarks.md, "Bot screening"):
//!
//! - plain literals (most of the lists: `googlebot/`, `ahrefsbot`) go into one
//!   Aho-Corasick automaton searched anywhere;
//! - literals anchored at the start (`^curl`, a few dozen) are compared one
//!   by one;
//! - the rest (~50 real regexes, overrides included) into one combined
//!   `regex` without Unicode classes (user agents are ASCII; `\d`, `\s` match
//!   ASCII only).
//!
//! Each pattern is a [`Kind::Preview`] (a link-preview fetcher: Clickstitch's
//! own tokens and the crawler list's `social-preview` entries) or a
//! [`Kind::Bot`]. A preview match wins over a bot match.

use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind, StartKind};
use regex::bytes::{Regex, RegexBuilder};

/// Whether a pattern names a link-preview fetcher or any other bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Any crawler, monitor, scanner, library or tool.
    Bot,
    /// A chat or social app drawing a preview card.
    Preview,
}

/// Where a pattern comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Link-preview tokens Clickstitch names itself (`LINK_PREVIEW_TOKENS`).
    Clickstitch,
    /// The `isbot` crate's list (`data/isbot-patterns.txt`).
    Isbot,
    /// The `crawler-user-agents` list (`data/crawler-user-agents.json`).
    CrawlerUserAgents,
}

impl Source {
    /// The list's name, as in docs/bot-screening.md.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Clickstitch => "clickstitch",
            Self::Isbot => "isbot",
            Self::CrawlerUserAgents => "crawler-user-agents",
        }
    }
}

/// Link-preview fetchers (lower case, regex syntax), named here because
/// several are missing from the lists or listed as plain bots. Prefix-anchored
/// tokens (`^viber`) are the bare preview fetchers of apps whose in-app
/// browsers carry the same name later in a browser user agent.
const LINK_PREVIEW_TOKENS: &[&str] = &[
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "^whatsapp",
    "whatsapp/",
    "linkedinbot",
    "skypeuripreview",
    "bingpreview",
    "redditbot",
    "pinterestbot",
    "embedly",
    "iframely",
    "vkshare",
    "^viber",
    "^snapchat",
    "snap url preview",
    "snapurlpreview",
    "mastodon",
    "google web preview",
    "yahoo link preview",
    "microsoftpreview",
    "teams/",
    // Bluesky's link-card fetcher (`Bluesky Cardyb/1.1`)
    "cardyb",
];

/// The `isbot` crate's patterns (0.1.3), one per line, already lower case.
const ISBOT_PATTERNS: &str = include_str!("../../data/isbot-patterns.txt");

/// The crawler list's patterns, `<b|p>\t<pattern>` per line, extracted from
/// `data/crawler-user-agents.json` by `build.rs` (`p`: tagged
/// `social-preview`).
const CRAWLER_PATTERNS: &str =
    include_str!(concat!(env!("OUT_DIR"), "/crawler-user-agents.patterns"));

/// A listed pattern Clickstitch replaces or leaves out, and why. Every one was
/// found by the browser corpus test (`tests/bot_corpus.rs`) or a one-off run
/// over the isbot crate's browser fixtures (docs/bot-screening.md), and the
/// unit tests check that each still exists in its list.
#[derive(Debug)]
pub(super) struct Override {
    /// The list the pattern is in.
    pub source: Source,
    /// The pattern exactly as listed.
    pub listed: &'static str,
    /// What is matched instead (lower case), or `None` to leave it out.
    pub replacement: Option<&'static str>,
    /// Why.
    pub reason: &'static str,
}

/// Sogou's crawlers: `Sogou web spider/4.0`, `Sogou Orion spider`,
/// `New-Sogou-Spider/1.0`, `Sogou-Test-Spider`, `sogou spider`.
const SOGOU_SPIDERS: &str = "sogou(?:[ -][a-z]+)?[ -]spider";
const SOGOU_REASON: &str = "also Sogou's browser and search app (`SogouMobileBrowser`, \
                            `SogouMSE`, `SogouSearch`) and app channel ids (`om_sd_sogousz1`); \
                            Sogou's crawlers all call themselves `… spider`";

/// Hand translations of listed patterns that also match real browsers.
pub(super) const OVERRIDES: &[Override] = &[
    Override {
        source: Source::CrawlerUserAgents,
        listed: "Sonic",
        replacement: Some("(?:^|[^a-z])sonic/|ranksonic"),
        reason: "matched case-insensitively it is inside device and brand names (`Panasonic`, \
                 `PROSONIC` TVs, `GoogleHypersonic`); its examples are `Sonic/1.0` and \
                 `RankSonicSiteAuditor`",
    },
    Override {
        source: Source::CrawlerUserAgents,
        listed: "Sogou",
        replacement: Some(SOGOU_SPIDERS),
        reason: SOGOU_REASON,
    },
    Override {
        source: Source::Isbot,
        listed: "sogou",
        replacement: Some(SOGOU_SPIDERS),
        reason: SOGOU_REASON,
    },
    Override {
        source: Source::Isbot,
        listed: "sputnik",
        replacement: Some("sputnik(?:[^b]|$|bot)"),
        reason: "also the Sputnik browser (`SputnikBrowser/…`)",
    },
    Override {
        source: Source::CrawlerUserAgents,
        listed: r"NING\/",
        replacement: Some("(?:^|[^a-z])ning/"),
        reason: "matched case-insensitively it is inside `Lightning/` (Thunderbird's and \
                 SeaMonkey's calendar); Ning's crawler is `NING/1.0`",
    },
    Override {
        source: Source::CrawlerUserAgents,
        listed: "Blackboard",
        replacement: Some("blackboard safeassign"),
        reason: "also the Blackboard app's in-app browser (`Blackboard/3.6.1`); the crawler \
                 is `Blackboard Safeassign`",
    },
    Override {
        source: Source::CrawlerUserAgents,
        listed: r"008\/",
        replacement: Some("(?:^|[^0-9a-z])008/"),
        reason: "also the end of device names (`DESAY TS1008/1.0`)",
    },
    Override {
        source: Source::CrawlerUserAgents,
        listed: r"AP3A\.240617\.008",
        replacement: None,
        reason: "an Android build id shared by many phones; its only example is an \
                 Instagram in-app browser",
    },
    Override {
        source: Source::CrawlerUserAgents,
        listed: "Fluid",
        replacement: None,
        reason: "Fluid is a site-specific browser (a person); its only example is Fluid/0.9.6",
    },
    Override {
        source: Source::Isbot,
        listed: "banca caboto",
        replacement: None,
        reason: "a company token in the Internet Explorer of a bank's staff",
    },
    Override {
        source: Source::Isbot,
        listed: "qqdownload",
        replacement: None,
        reason: "the QQ download manager's token in people's Internet Explorer",
    },
];

/// One pattern as it is matched.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    /// The list it comes from.
    pub source: Source,
    /// As listed (before lower-casing and overrides).
    pub listed: &'static str,
    /// What is matched: lower case, override applied.
    pub effective: String,
    /// Preview fetcher or bot.
    pub kind: Kind,
}

/// Every pattern of every list with the overrides applied (left-out patterns
/// are not returned).
pub(super) fn all_patterns() -> Vec<Pattern> {
    let own = LINK_PREVIEW_TOKENS
        .iter()
        .map(|&t| (Source::Clickstitch, t, Kind::Preview));
    let isbot = ISBOT_PATTERNS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (Source::Isbot, l, Kind::Bot));
    let crawler = CRAWLER_PATTERNS.lines().filter_map(|l| {
        let (kind, pattern) = l.split_once('\t')?;
        let kind = if kind == "p" {
            Kind::Preview
        } else {
            Kind::Bot
        };
        Some((Source::CrawlerUserAgents, pattern, kind))
    });
    own.chain(isbot)
        .chain(crawler)
        .filter_map(|(source, listed, kind)| {
            let effective = match OVERRIDES
                .iter()
                .find(|o| o.source == source && o.listed == listed)
            {
                Some(o) => o.replacement?.to_owned(),
                None => lower_pattern(listed),
            };
            Some(Pattern {
                source,
                listed,
                effective,
                kind,
            })
        })
        .collect()
}

/// Listed patterns per list, as listed (for the tests' accounting).
#[cfg(test)]
pub(super) fn listed(source: Source) -> Vec<&'static str> {
    match source {
        Source::Clickstitch => LINK_PREVIEW_TOKENS.to_vec(),
        Source::Isbot => ISBOT_PATTERNS
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect(),
        Source::CrawlerUserAgents => CRAWLER_PATTERNS
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(_, p)| p))
            .collect(),
    }
}

/// Lower-cases a regex pattern outside escapes (`\S` stays `\S`, `\D` stays
/// `\D`), so that it matches the lower-cased user agent as the original would
/// match case-insensitively.
pub(super) fn lower_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        out.push(if escaped { c } else { c.to_ascii_lowercase() });
        escaped = !escaped && c == '\\';
    }
    out
}

/// The text a pattern matches when it is a plain literal (escaped punctuation
/// allowed: `googlebot\/` → `googlebot/`), else `None`.
pub(super) fn as_literal(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                n if n.is_ascii_alphanumeric() || n.is_whitespace() => return None,
                n => out.push(n),
            },
            '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                return None
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A pattern (or group of patterns) the engine could not use.
#[derive(Debug, Clone)]
pub(super) struct Rejected {
    /// The list, when one pattern is meant.
    pub source: Option<Source>,
    /// The pattern as listed.
    pub listed: String,
    /// Why (the regex or aho-corasick crate's error).
    pub error: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = self.source.map_or("all lists", Source::name);
        write!(f, "{list} {:?}: {}", self.listed, self.error)
    }
}

/// All lists compiled.
#[derive(Debug)]
pub(super) struct Engine {
    anywhere: Option<AhoCorasick>,
    anywhere_kinds: Vec<Kind>,
    /// Literals anchored at the start (a few dozen: checked one by one).
    prefix: Vec<(String, Kind)>,
    preview_regex: Option<Regex>,
    bot_regex: Option<Regex>,
    /// Patterns left out because they do not compile (none today; the unit
    /// tests and `bot::rejected_patterns` report any).
    pub rejected: Vec<Rejected>,
}

impl Engine {
    /// Compiles `patterns`.
    pub(super) fn new(patterns: &[Pattern]) -> Self {
        let mut rejected = Vec::new();
        let mut anywhere = (Vec::new(), Vec::new());
        let mut prefix = (Vec::new(), Vec::new());
        let mut preview_regexes = Vec::new();
        let mut bot_regexes = Vec::new();
        for p in patterns {
            if let Some(text) = as_literal(&p.effective) {
                anywhere.0.push(text);
                anywhere.1.push(p.kind);
            } else if let Some(text) = p.effective.strip_prefix('^').and_then(as_literal) {
                prefix.0.push(text);
                prefix.1.push(p.kind);
            } else if p.kind == Kind::Preview {
                preview_regexes.push(p);
            } else {
                bot_regexes.push(p);
            }
        }
        let mut automaton = |start: StartKind, texts: &[String], what: &str| {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(start)
                .build(texts)
                .map_err(|e| {
                    rejected.push(Rejected {
                        source: None,
                        listed: format!("all {} {what} literals", texts.len()),
                        error: e.to_string(),
                    })
                })
                .ok()
        };
        let anywhere_ac = automaton(StartKind::Unanchored, &anywhere.0, "unanchored");
        let preview_regex = combined(&preview_regexes, &mut rejected);
        let bot_regex = combined(&bot_regexes, &mut rejected);
        Self {
            anywhere: anywhere_ac,
            anywhere_kinds: anywhere.1,
            prefix: prefix.0.into_iter().zip(prefix.1).collect(),
            preview_regex,
            bot_regex,
            rejected,
        }
    }

    /// The kind of the patterns matching the lower-cased `view` (a preview
    /// match wins), or `None`.
    pub(super) fn classify(&self, view: &str) -> Option<Kind> {
        let mut found = None;
        for (literal, kind) in &self.prefix {
            if view.starts_with(literal.as_str()) {
                match kind {
                    Kind::Preview => return Some(Kind::Preview),
                    Kind::Bot => found = Some(Kind::Bot),
                }
            }
        }
        if let Some(ac) = &self.anywhere {
            for m in ac.find_overlapping_iter(view) {
                match self.anywhere_kinds[m.pattern().as_usize()] {
                    Kind::Preview => return Some(Kind::Preview),
                    Kind::Bot => found = Some(Kind::Bot),
                }
            }
        }
        let bytes = view.as_bytes();
        if self
            .preview_regex
            .as_ref()
            .is_some_and(|r| r.is_match(bytes))
        {
            return Some(Kind::Preview);
        }
        if found.is_none() && self.bot_regex.as_ref().is_some_and(|r| r.is_match(bytes)) {
            found = Some(Kind::Bot);
        }
        found
    }
}

/// One regex for all of `patterns` (ASCII classes, no Unicode tables). When
/// the alternation does not compile, each pattern is tried alone and the ones
/// that fail are reported in `rejected`.
fn combined(patterns: &[&Pattern], rejected: &mut Vec<Rejected>) -> Option<Regex> {
    let build = |ps: &mut dyn Iterator<Item = &str>| {
        let alternation: Vec<String> = ps.map(|p| format!("(?:{p})")).collect();
        RegexBuilder::new(&alternation.join("|"))
            .unicode(false)
            .size_limit(64 << 20)
            .build()
    };
    if patterns.is_empty() {
        return None;
    }
    if let Ok(regex) = build(&mut patterns.iter().map(|p| p.effective.as_str())) {
        return Some(regex);
    }
    let mut good = Vec::new();
    for p in patterns {
        match build(&mut std::iter::once(p.effective.as_str())) {
            Ok(_) => good.push(p.effective.as_str()),
            Err(e) => rejected.push(Rejected {
                source: Some(p.source),
                listed: p.listed.to_owned(),
                error: e.to_string(),
            }),
        }
    }
    build(&mut good.into_iter()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_lower_cased_outside_escapes() {
        assert_eq!(
            lower_pattern(r"Current[\s\S]*RSS Reader"),
            r"current[\s\S]*rss reader"
        );
        assert_eq!(lower_pattern(r"A\\B"), r"a\\b");
    }

    #[test]
    fn literals_are_recognised_with_escaped_punctuation_only() {
        assert_eq!(as_literal(r"googlebot\/"), Some("googlebot/".into()));
        assert_eq!(as_literal(r"unshorten\.it\!"), Some("unshorten.it!".into()));
        assert_eq!(as_literal(r"blogtraffic\/\d"), None);
        assert_eq!(as_literal("^curl"), None);
        assert_eq!(as_literal("lcc "), Some("lcc ".into()));
        assert_eq!(as_literal(""), None);
    }

    #[test]
    fn every_listed_pattern_compiles_and_none_is_silently_dropped() {
        let patterns = all_patterns();
        let engine = Engine::new(&patterns);
        let report: Vec<String> = engine.rejected.iter().map(ToString::to_string).collect();
        assert!(
            report.is_empty(),
            "{} pattern(s) do not compile with the regex crate:\n{}",
            report.len(),
            report.join("\n")
        );
        for source in [
            Source::Clickstitch,
            Source::Isbot,
            Source::CrawlerUserAgents,
        ] {
            for listed in listed(source) {
                let used = patterns
                    .iter()
                    .any(|p| p.source == source && p.listed == listed);
                let left_out = OVERRIDES
                    .iter()
                    .any(|o| o.source == source && o.listed == listed && o.replacement.is_none());
                assert!(
                    used || left_out,
                    "{source:?} pattern {listed:?} is neither used nor an override"
                );
            }
        }
    }

    #[test]
    fn the_lists_are_all_there() {
        assert!(listed(Source::Isbot).len() >= 300);
        assert!(listed(Source::CrawlerUserAgents).len() >= 1_400);
        let patterns = all_patterns();
        let preview = patterns
            .iter()
            .filter(|p| p.source == Source::CrawlerUserAgents && p.kind == Kind::Preview)
            .count();
        assert!(preview >= 50, "{preview} social-preview patterns");
    }

    #[test]
    fn every_override_names_a_listed_pattern_and_its_replacement_compiles() {
        for o in OVERRIDES {
            assert!(
                listed(o.source).contains(&o.listed),
                "override of {:?} {:?}: no longer listed; remove it",
                o.source,
                o.listed
            );
            if let Some(r) = o.replacement {
                assert_eq!(r, r.to_ascii_lowercase(), "replacements are lower case");
                assert!(Regex::new(r).is_ok(), "{r:?} does not compile");
            }
            assert!(!o.reason.is_empty());
        }
    }

    #[test]
    fn a_preview_match_wins_over_a_bot_match() {
        let engine = Engine::new(&all_patterns());
        assert_eq!(
            engine.classify("telegrambot (like twitterbot)"),
            Some(Kind::Preview)
        );
        assert_eq!(engine.classify("curl/8.5.0"), Some(Kind::Bot));
        assert_eq!(engine.classify("mozilla/5.0 (windows nt 10.0)"), None);
    }

    /// Why the engine is split (docs/benchmarks.md, "Bot screening"): one
    /// alternation of every pattern against the split engine, over the
    /// corpora interleaved. A measurement, not a check:
    /// `cargo test --release -p clickstitch-shared --lib one_alternation -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement; run it in release"]
    fn one_alternation_of_every_pattern_is_much_slower_on_varied_traffic() {
        use std::time::Instant;
        let patterns = all_patterns();
        let alternation: Vec<String> = patterns
            .iter()
            .map(|p| format!("(?:{})", p.effective))
            .collect();
        let one = RegexBuilder::new(&alternation.join("|"))
            .unicode(false)
            .size_limit(256 << 20)
            .build()
            .expect("the alternation compiles");
        let engine = Engine::new(&patterns);
        let mut uas = Vec::new();
        for file in [
            "browsers.user-agents.txt",
            "browsers.device-detector.txt",
            "in-app.device-detector.tsv",
            "bots.device-detector.txt",
        ] {
            let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("the corpora");
            uas.extend(
                text.lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_ascii_lowercase),
            );
        }
        // A deterministic interleaving, so that neighbours differ.
        let n = uas.len();
        let mixed: Vec<&str> = (0..n).map(|i| uas[(i * 7919) % n].as_str()).collect();
        for round in 1..=3 {
            let t = Instant::now();
            let one_hits = mixed
                .iter()
                .filter(|ua| one.is_match(ua.as_bytes()))
                .count();
            let one_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t = Instant::now();
            let split_hits = mixed
                .iter()
                .filter(|ua| engine.classify(ua).is_some())
                .count();
            let split_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            assert_eq!(one_hits, split_hits, "both find the same bots");
            println!(
                "round {round}, {n} user agents: one alternation {one_us:.2} µs each, \
                 split engine {split_us:.2} µs each"
            );
        }
    }
}
