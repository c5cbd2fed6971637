//! Bot screening: whether a request comes from a person or a machine.
//!
//! Owns the verdict and its reason. Does not look at IPs or ASNs (the
//! aggregator's fraud scoring does). A request is a bot when it is a `HEAD`, has
//! no user agent, or its user agent matches a pattern of one of these lists,
//! compiled together once per process / isolate ([`warm_up`]):
//!
//! - the `isbot` crate's patterns (0.1.3, 348 patterns), vendored as
//!   `data/isbot-patterns.txt`;
//! - every pattern of the public crawler-user-agents list (npm
//!   `crawler-user-agents`, 1.60.0, 1 500 patterns), vendored exactly as
//!   shipped in `data/crawler-user-agents.json` (`scripts/update-bot-lists.sh`
//!   refreshes both);
//! - Clickstitch's own link-preview tokens (chat apps and social networks
//!   unfurling a pasted link: the most common non-human "click" on an
//!   affiliate link).
//!
//! Matching is case-insensitive. Link-preview tokens and the crawler list's
//! `social-preview` entries give [`BotReason::LinkPreview`], every other match
//! [`BotReason::KnownBot`]. A handful of listed patterns that also match real
//! browsers are translated by hand or left out ([`overrides`], each with its
//! reason).
//!
//! **In-app browsers are people.** Before matching, the parts of a user agent
//! that only describe the person's device or app are cut out: the model and
//! build id of an Android platform comment (other fields there stay
//! evidence), and — in a real browser user agent
//! (`Mozilla/5.0 (` with an iPhone/iPad/Android/Linux platform) — the tokens of
//! the in-app browsers of Facebook/Messenger (`FBAN`, `FBAV`, `FB_IAB`),
//! Instagram, Snapchat, Viber, LINE, WeChat (`MicroMessenger`), TikTok
//! (`musical_ly`, `BytedanceWebview`, `TikTok`) and Telegram. Android WebView
//! (`; wv)`) matches no pattern to begin with. A bot marker anywhere else still
//! counts, and the apps' own preview fetchers (`WhatsApp/2.23.20.0`, a bare
//! `Viber` or `WhatsApp`, `TelegramBot (like TwitterBot)`, `Snap URL Preview
//! Service`, `facebookexternalhit/1.1`) are not browser user agents, so they
//! stay [`BotReason::LinkPreview`].
//!
//! Measured (tests/bot_corpus.rs): 99.91 % of the crawler list's 2 118
//! example user agents are bots (the 2 misses are people, on purpose), 0 of
//! 26 103 real browser and in-app browser user agents are (0 of 36 495 with
//! the unsampled corpus); docs/bot-screening.md has the figures and sources,
//! docs/benchmarks.md ("Bot screening") the costs: ~2 µs per user agent, ~5 ms
//! for [`warm_up`].

mod patterns;
mod view;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Why a request was judged to be a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotReason {
    /// The user agent matches a known crawler / tool pattern.
    KnownBot,
    /// A `HEAD` request: link checkers, not people.
    HeadRequest,
    /// No (or a blank) `User-Agent` header.
    EmptyUserAgent,
    /// A chat or social app fetching the page to draw a preview card.
    LinkPreview,
}

impl BotReason {
    /// Stable text form, as stored in ClickHouse (`clicks.bot_reason`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::KnownBot => "known_bot",
            Self::HeadRequest => "head_request",
            Self::EmptyUserAgent => "empty_user_agent",
            Self::LinkPreview => "link_preview",
        }
    }

    /// Parses the stored text form.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::KnownBot,
            Self::HeadRequest,
            Self::EmptyUserAgent,
            Self::LinkPreview,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// The screening verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotVerdict {
    /// Looks like a person.
    Human,
    /// A machine, and why we think so.
    Bot(BotReason),
}

impl BotVerdict {
    /// Whether the verdict is [`BotVerdict::Bot`].
    pub fn is_bot(&self) -> bool {
        matches!(self, Self::Bot(_))
    }
}

/// Everything compiled once: the pattern engine and the in-app token cutter.
#[derive(Debug)]
struct Screen {
    engine: patterns::Engine,
    in_app_tokens: regex::Regex,
}

fn compiled() -> &'static Screen {
    static SCREEN: OnceLock<Screen> = OnceLock::new();
    SCREEN.get_or_init(|| Screen {
        engine: patterns::Engine::new(&patterns::all_patterns()),
        in_app_tokens: regex::Regex::new(view::IN_APP_TOKENS)
            .expect("the in-app token pattern is a constant that compiles (tested)"),
    })
}

/// Compiles the bot patterns now rather than on the first click (call at
/// isolate / process start to keep the first redirect fast; a few ms).
pub fn warm_up() {
    let _ = compiled();
}

/// A pattern of a maintained list that Clickstitch matches differently or
/// leaves out, and why (the overrides table of docs/bot-screening.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOverride {
    /// The list: `isbot` or `crawler-user-agents`.
    pub list: &'static str,
    /// The pattern exactly as listed.
    pub listed: &'static str,
    /// What is matched instead (lower case), or `None`: left out.
    pub replacement: Option<&'static str>,
    /// Why.
    pub reason: &'static str,
}

/// Every listed pattern Clickstitch overrides, with its reason.
pub fn overrides() -> impl Iterator<Item = ListOverride> {
    patterns::OVERRIDES.iter().map(|o| ListOverride {
        list: o.source.name(),
        listed: o.listed,
        replacement: o.replacement,
        reason: o.reason,
    })
}

/// Listed patterns the regex engine could not compile, which are therefore
/// not matched (`<list> "<pattern>": <error>`). Empty with the vendored lists
/// (the tests check); worth logging after a list update. Compiles the lists
/// if [`warm_up`] has not.
pub fn rejected_patterns() -> Vec<String> {
    compiled()
        .engine
        .rejected
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Screens one request from its method and `User-Agent`.
pub fn screen(is_head_request: bool, user_agent: Option<&str>) -> BotVerdict {
    if is_head_request {
        return BotVerdict::Bot(BotReason::HeadRequest);
    }
    let ua = match user_agent.map(str::trim) {
        None | Some("") => return BotVerdict::Bot(BotReason::EmptyUserAgent),
        Some(ua) => ua,
    };
    let screen = compiled();
    let lower = ua.to_ascii_lowercase();
    let view = view::human_view(&lower, &screen.in_app_tokens);
    match screen.engine.classify(&view) {
        Some(patterns::Kind::Preview) => BotVerdict::Bot(BotReason::LinkPreview),
        Some(patterns::Kind::Bot) => BotVerdict::Bot(BotReason::KnownBot),
        None => BotVerdict::Human,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36";

    #[test]
    fn ordinary_browsers_are_human() {
        for ua in [CHROME, IPHONE, ANDROID] {
            assert_eq!(screen(false, Some(ua)), BotVerdict::Human, "{ua}");
        }
    }

    #[test]
    fn apps_and_devices_whose_names_contain_a_crawlers_name_are_people() {
        // Real user agents (Device Detector's fixtures, the isbot crate's
        // browser fixtures) that listed patterns matched before their
        // overrides (`patterns::OVERRIDES`).
        for ua in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 11_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E216 Blackboard/3.7.0",
            "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:52.0) Gecko/20100101 Thunderbird/52.3.0 Lightning/5.4.3",
            "Mozilla/5.0 (Linux; Android 7.0; JMM-AL00 Build/HONORJMM-AL00; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/62.0.3202.84 Mobile Safari/537.36 SogouSearch Android1.0 version3.0 AppVersion/6002",
            "Mozilla/5.0 (Linux ) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/53.0.2785.143 Safari/537.36 OPR/40.0.2207.0 OMI/4.9.0.237.DOM3-OPT.258 Model/Vestel-MB211 VSTVB MB200 HbbTV/1.2.1 (; PROSONIC; MB211; 3.33.17.4; _TV_NT72563_2017;) SmartTvA/3.0.0",
        ] {
            assert_eq!(screen(false, Some(ua)), BotVerdict::Human, "{ua}");
        }
    }

    #[test]
    fn overrides_are_listed_with_their_reasons() {
        let overrides: Vec<ListOverride> = overrides().collect();
        assert!(overrides.iter().any(|o| o.list == "crawler-user-agents"
            && o.listed == "Sonic"
            && o.replacement.is_some()));
        assert!(overrides.iter().all(|o| !o.reason.is_empty()));
        assert!(rejected_patterns().is_empty());
    }

    #[test]
    fn crawlers_and_tools_from_the_maintained_list_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        ] {
            assert_eq!(screen(false, Some(ua)), BotVerdict::Bot(BotReason::KnownBot), "{ua}");
        }
    }

    #[test]
    fn link_preview_fetchers_get_their_own_reason() {
        for ua in [
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "TelegramBot (like TwitterBot)",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app) Chrome/W.X.Y.Z Safari/537.36",
        ] {
            assert_eq!(
                screen(false, Some(ua)),
                BotVerdict::Bot(BotReason::LinkPreview),
                "{ua}"
            );
        }
    }

    #[test]
    fn head_requests_and_missing_user_agents_are_bots() {
        assert_eq!(
            screen(true, Some(CHROME)),
            BotVerdict::Bot(BotReason::HeadRequest)
        );
        assert_eq!(
            screen(false, None),
            BotVerdict::Bot(BotReason::EmptyUserAgent)
        );
        assert_eq!(
            screen(false, Some("  ")),
            BotVerdict::Bot(BotReason::EmptyUserAgent)
        );
    }

    #[test]
    fn reasons_round_trip_through_their_stored_form() {
        for r in [
            BotReason::KnownBot,
            BotReason::HeadRequest,
            BotReason::EmptyUserAgent,
            BotReason::LinkPreview,
        ] {
            assert_eq!(BotReason::parse(r.as_str()), Some(r));
        }
    }
}
