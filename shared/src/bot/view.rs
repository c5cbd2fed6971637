//! What of a user agent counts as evidence.
//!
//! Before the pattern lists look at a user agent, the parts that only describe
//! the person's device or app are cut out of (a lower-cased copy of) it:
//!
//! - **The device of an Android platform comment.** Phone makers name models
//!   after anything (`B BOT 550`, `CUBOT`, `HTC Butterfly`, `Spider 8`,
//!   `FEVER_PLUS`), and build ids are shared by millions of phones
//!   (`AP3A.240617.008`). `(Linux; Android 14; Spider 8 Build/AP3A.240617.008;
//!   wv)` is read as `(linux; android 14; wv)`. Only the model (the first
//!   field after the Android version that is not a locale, `wv`, …, or a field
//!   with `Build/`) and a build id on its own are cut: any other field is
//!   evidence (`(Linux; Android 8.0; Pixel 2 Build/…; Storebot-Google/1.0)`
//!   keeps `storebot-google/1.0`). A comment that describes a bot
//!   (`compatible`, a URL or an e-mail address in it) is left whole.
//! - **In-app browser tokens, in a real browser user agent.** A user agent that
//!   starts `Mozilla/5.0 (` with an iPhone, iPad, iPod, Android or Linux
//!   platform loses the tokens the in-app browsers of Facebook and Messenger
//!   (`[FBAN/…]`, `[FB_IAB/…]`), Instagram, Snapchat, Viber, LINE, WeChat
//!   (`MicroMessenger/…`), TikTok (`musical_ly_…`, `BytedanceWebview/…`,
//!   `TikTok …`) and Telegram (`Telegram-Android/…`) append, with the device
//!   details they carry. What is left must still look like a person: a bot
//!   marker elsewhere in the user agent (`TikTokSpider`, `MetaIAB Facebook`)
//!   still counts. Android WebView (`; wv)`) needs nothing cut: its marker
//!   matches no pattern.
//! - **Known human tokens** that happen to contain a bot marker (an embedded
//!   Internet Explorer naming its component's web site).

use std::borrow::Cow;

use regex::Regex;

/// The in-app browser tokens (lower case), each with the device details that
/// follow it. Compiled once with the pattern lists.
pub(super) const IN_APP_TOKENS: &str = concat!(
    r"\s*\[(?:fban|fb_iab)/[^\]]*\]?",
    r"|\s*instagram [0-9][^ ]*(?: android)?(?: \([^)]*\)?)?",
    r"|\s*snapchat/?[0-9][^ ]*(?: \([^)]*\)?)?",
    r"|\s*viber/[0-9][^ ]*",
    r"|\s*line/[0-9][^ ]*",
    r"|\s*micromessenger/[0-9][^ ]*",
    r"|\s*(?:musical_ly|trill)_[0-9][^ ]*",
    r"|\s*appname/(?:musical_ly|trill|tiktok)\b",
    r"|\s*bytedancewebview/[^ ]*",
    r"|\s*tiktok[ /][0-9][^ ]*",
    r"|\s*telegram(?:-android|-ios)?/[0-9][^ ]*(?: \([^)]*\)?)?",
);

/// Tokens (lower case) of real browsers that contain a bot marker.
const HUMAN_TOKENS: &[&str] = &[
    // The EmbeddedWB component embeds Internet Explorer in desktop programs
    // and names its web site in the user agent (a URL: a bot marker).
    "embedded web browser from: http://bsalsa.com/",
];

/// The lower-cased user agent `lower` without the parts that describe the
/// person's device or app (see the module docs).
pub(super) fn human_view<'a>(lower: &'a str, in_app_tokens: &Regex) -> Cow<'a, str> {
    let mut view = Cow::Borrowed(lower);
    if let Some(stripped) = strip_android_device(&view) {
        view = Cow::Owned(stripped);
    }
    if is_browser_shaped(&view) {
        if let Cow::Owned(cut) = in_app_tokens.replace_all(&view, "") {
            view = Cow::Owned(cut);
        }
    }
    for token in HUMAN_TOKENS {
        if view.contains(token) {
            view = Cow::Owned(view.replace(token, ""));
        }
    }
    view
}

/// Whether the lower-cased user agent looks like a browser on a phone, tablet
/// or Linux: `mozilla/5.0 (` and a platform comment naming one of them.
pub(super) fn is_browser_shaped(lower: &str) -> bool {
    let Some(rest) = lower.strip_prefix("mozilla/5.0 (") else {
        return false;
    };
    let comment = rest.split(')').next().unwrap_or(rest);
    ["iphone", "ipad", "ipod", "android", "linux"]
        .iter()
        .any(|platform| comment.contains(platform))
}

/// The user agent with the model and build id cut from its first comment when
/// that comment is an Android platform (`(linux; u; android 8.1.0; en-us;
/// panasonic p6 build/o11019)` → `(linux; u; android 8.1.0; en-us)`), or
/// `None` when there is nothing to cut.
fn strip_android_device(lower: &str) -> Option<String> {
    let open = lower.find('(')?;
    let close = lower[open..].find(')').map_or(lower.len(), |i| open + i);
    let comment = &lower[open + 1..close];
    if !comment.contains("android")
        || ["compatible", "http", "www.", "@"]
            .iter()
            .any(|bot| comment.contains(bot))
    {
        return None;
    }
    let mut after_android = false;
    let mut model_cut = false;
    let kept: Vec<&str> = comment
        .split(';')
        .map(str::trim)
        .filter(|field| {
            if is_platform_field(field) {
                after_android |= field.starts_with("android");
                return true;
            }
            if field.contains("build/") {
                // `<model> Build/<id>`
                model_cut = true;
                return false;
            }
            if is_build_id(field) {
                return false;
            }
            if after_android && !model_cut {
                // the first other field after the Android version: the model
                model_cut = true;
                return false;
            }
            // anything else (`Storebot-Google/1.0`) is evidence
            true
        })
        .collect();
    let rebuilt = kept.join("; ");
    if rebuilt == comment {
        return None;
    }
    let mut out = String::with_capacity(lower.len());
    out.push_str(&lower[..=open]);
    out.push_str(&rebuilt);
    out.push_str(&lower[close..]);
    Some(out)
}

/// Fields of an Android platform comment that say nothing about the device:
/// `linux`, `u`, `android 14`, `wv`, `mobile`, `tablet`, `k` and locales.
fn is_platform_field(field: &str) -> bool {
    matches!(field, "linux" | "u" | "wv" | "k" | "mobile" | "tablet")
        || field.strip_prefix("android").is_some_and(|version| {
            version
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '_'))
        })
        || is_locale(field)
}

/// An Android build id on its own (`bp2a.250605.031.a3`, `ap3a.240617.008`):
/// four letters or digits, a six-digit date, a three-digit number and maybe a
/// short suffix.
fn is_build_id(field: &str) -> bool {
    let parts: Vec<&str> = field.split('.').collect();
    let alnum = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric());
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    matches!(parts.len(), 3 | 4)
        && parts[0].len() == 4
        && alnum(parts[0])
        && digits(parts[1], 6)
        && digits(parts[2], 3)
        && parts
            .get(3)
            .is_none_or(|p| (1..=4).contains(&p.len()) && alnum(p))
}

/// `en`, `en-us`, `zh_cn`.
fn is_locale(field: &str) -> bool {
    let b = field.as_bytes();
    match b.len() {
        2 => b.iter().all(u8::is_ascii_lowercase),
        5 => {
            b[..2].iter().all(u8::is_ascii_lowercase)
                && matches!(b[2], b'-' | b'_')
                && b[3..].iter().all(u8::is_ascii_lowercase)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ua: &str) -> String {
        let tokens = Regex::new(IN_APP_TOKENS).unwrap();
        human_view(&ua.to_ascii_lowercase(), &tokens).into_owned()
    }

    #[test]
    fn android_device_models_and_build_ids_are_not_evidence() {
        assert_eq!(
            view("Mozilla/5.0 (Linux; Android 6.0; B BOT 550 Build/MRA58K; wv) AppleWebKit/537.36"),
            "mozilla/5.0 (linux; android 6.0; wv) applewebkit/537.36"
        );
        assert_eq!(
            view("Dalvik/2.1.0 (Linux; U; Android 8.1.0; en-us; Panasonic P6 Build/O11019)"),
            "dalvik/2.1.0 (linux; u; android 8.1.0; en-us)"
        );
    }

    #[test]
    fn only_the_model_and_build_id_are_cut_from_an_android_comment() {
        assert_eq!(
            view("Mozilla/5.0 (Linux; Android 16; SM-F966N; BP2A.250605.031.A3; wv) AppleWebKit/537.36"),
            "mozilla/5.0 (linux; android 16; wv) applewebkit/537.36"
        );
        assert_eq!(
            view("Mozilla/5.0 (Linux; Android 8.0; Pixel 2 Build/OPD3.170816.012; Storebot-Google/1.0) AppleWebKit/537.36"),
            "mozilla/5.0 (linux; android 8.0; storebot-google/1.0) applewebkit/537.36"
        );
        assert!(is_build_id("ap3a.240617.008"));
        assert!(!is_build_id("storebot-google/1.0"));
        assert!(!is_build_id("1.2.3"));
    }

    #[test]
    fn an_android_comment_that_describes_a_bot_is_kept_whole() {
        let ua = "mozilla/5.0 (linux; android 5.0; compatible; somebot/1.0; +http://bot.example)";
        assert_eq!(view(ua), ua);
    }

    #[test]
    fn in_app_tokens_are_cut_from_real_browser_user_agents_only() {
        assert_eq!(
            view("Mozilla/5.0 (Linux; Android 14; SM-A556B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/137.0.7151.116 Mobile Safari/537.36 Viber/27.4.0.0"),
            "mozilla/5.0 (linux; android 14; wv) applewebkit/537.36 (khtml, like gecko) version/4.0 chrome/137.0.7151.116 mobile safari/537.36"
        );
        assert_eq!(
            view("Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 283.0.0.16.103 (iPhone15,3; iOS 16_5; ru_UZ; ru-UZ; scale=3.00; 1290x2796; 474411477)"),
            "mozilla/5.0 (iphone; cpu iphone os 16_5 like mac os x) applewebkit/605.1.15 (khtml, like gecko) mobile/15e148"
        );
        assert_eq!(view("Viber/27.4.0.0"), "viber/27.4.0.0");
    }

    #[test]
    fn telegrams_android_token_is_cut_with_its_device_details() {
        // The format Telegram documents ("additional data in user agent",
        // core.telegram.org/bots/webapps); the corpora have no example.
        assert_eq!(
            view("Mozilla/5.0 (Linux; Android 11; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.6668.70 Mobile Safari/537.36 Telegram-Android/11.2.1 (Tecno mobile limited TECNO CH7n; Android 11; SDK 30; AVERAGE)"),
            "mozilla/5.0 (linux; android 11; k) applewebkit/537.36 (khtml, like gecko) chrome/129.0.6668.70 mobile safari/537.36"
        );
    }

    #[test]
    fn a_bot_marker_next_to_an_in_app_token_survives() {
        let ua = "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; TikTokSpider; ttspider-feedback@tiktok.com)";
        assert!(view(ua).contains("tiktokspider"));
    }
}
