//! The first-party visitor cookie `cs_vid`: one random
//! [`VisitorId`] per browser profile, kept on the tracking domain.
//!
//! Owns the cookie's name and attributes, finding it in a `Cookie` header,
//! choosing the id of a request (reuse a valid cookie, else a fresh one) and
//! deciding whether an answer sets it. Pure: the runtime reads the header,
//! draws the random bytes, and writes the header this module builds. Whether
//! a brand allows the cookie at all is `LinkDefinition::visitor_cookie`; the
//! runtime does not call in here when it does not.

use clickstitch_shared::fingerprint::VisitorId;

use crate::buffer::EdgeRecord;
use crate::pipeline::{Answer, Outcome};

/// The cookie's name.
pub const COOKIE_NAME: &str = "cs_vid";

/// The cookie's lifetime: 400 days, the most browsers keep a cookie.
pub const MAX_AGE_SECS: u32 = 400 * 24 * 60 * 60;

/// The visitor id of a `Cookie` header: the first `cs_vid` whose value is a
/// valid [`VisitorId`]. Anything else (absent, malformed, upper case, zero)
/// gives `None`, and the caller draws a new id that replaces it.
///
/// Pairs are separated by `;` and may be padded with spaces or tabs; a value
/// may be wrapped in double quotes (RFC 6265). When the browser sends the name
/// twice (another `Path` or `Domain` attribute than ours), the first valid
/// value wins: browsers list the most specific, then the oldest, first.
pub fn from_cookie_header(header: &str) -> Option<VisitorId> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name.trim_matches([' ', '\t']) != COOKIE_NAME {
            return None;
        }
        let value = value.trim_matches([' ', '\t']);
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        VisitorId::parse(value).ok()
    })
}

/// The visitor id of a request on a link whose brand allows the cookie: the
/// one its cookie holds, or a new one from `random` (16 random bytes, drawn
/// only when needed). `None` only when the random source gives all zeros.
pub fn choose(cookie_header: Option<&str>, random: impl FnOnce() -> [u8; 16]) -> Option<VisitorId> {
    cookie_header
        .and_then(from_cookie_header)
        .or_else(|| VisitorId::from_random(random()))
}

/// The `Set-Cookie` value storing `id`: first-party on the tracking domain
/// (no `Domain` attribute, so only the exact host gets it back), for every
/// path, 400 days, invisible to scripts, HTTPS only, and sent on top-level
/// navigations from other sites (a player following an affiliate's link).
pub fn set_cookie(id: VisitorId) -> String {
    format!("{COOKIE_NAME}={id}; Max-Age={MAX_AGE_SECS}; Path=/; HttpOnly; Secure; SameSite=Lax")
}

/// The `Set-Cookie` value for an answer, if it should (re)set the cookie:
/// only a redirect of a human click that carries a visitor id (`visitor` is
/// what the runtime passed in). Geo-blocked (451) and bot answers never set
/// it; neither does a request on a brand that turned the cookie off (the
/// runtime passes `None`). Refreshing on every human click keeps the 400
/// days counting from the latest visit.
pub fn cookie_for(visitor: Option<VisitorId>, outcome: &Outcome) -> Option<String> {
    let id = visitor?;
    let Answer::Redirect(_) = outcome.answer else {
        return None;
    };
    match &outcome.record {
        EdgeRecord::Click(click) if !click.is_bot && click.visitor_id == id.to_string() => {
            Some(set_cookie(id))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link_cache::tests::definition;
    use crate::pipeline::{ClickRequest, Pipeline};
    use clickstitch_shared::CountryCode;

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210";
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    fn id(text: &str) -> VisitorId {
        VisitorId::parse(text).expect("valid")
    }

    #[test]
    fn the_cookie_is_found_among_several_with_any_padding() {
        assert_eq!(from_cookie_header(&format!("cs_vid={ID}")), Some(id(ID)));
        assert_eq!(
            from_cookie_header(&format!("_ga=GA1.2.3; cs_vid={ID}; theme=dark")),
            Some(id(ID))
        );
        assert_eq!(
            from_cookie_header(&format!("a=1;cs_vid = {ID} ;\tb=2")),
            Some(id(ID))
        );
        assert_eq!(
            from_cookie_header(&format!(" \tcs_vid=\"{ID}\"")),
            Some(id(ID))
        );
    }

    #[test]
    fn other_names_and_bad_values_are_ignored() {
        assert_eq!(from_cookie_header(""), None);
        assert_eq!(from_cookie_header("cs_vid"), None);
        assert_eq!(
            from_cookie_header(&format!("xcs_vid={ID}; cs_vidx={ID}")),
            None
        );
        assert_eq!(from_cookie_header(&format!("CS_VID={ID}")), None);
        for bad in [
            "",
            "not-a-visitor",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "00000000000000000000000000000000",
            "0123456789abcdef 0123456789abcdef",
        ] {
            assert_eq!(from_cookie_header(&format!("cs_vid={bad}")), None, "{bad}");
        }
    }

    #[test]
    fn with_the_name_twice_the_first_valid_value_wins() {
        assert_eq!(
            from_cookie_header(&format!("cs_vid={ID}; cs_vid={OTHER}")),
            Some(id(ID))
        );
        assert_eq!(
            from_cookie_header(&format!("cs_vid=garbage; cs_vid={OTHER}")),
            Some(id(OTHER))
        );
    }

    #[test]
    fn a_valid_cookie_is_reused_and_anything_else_is_replaced_by_a_new_id() {
        let mut drawn = false;
        let reused = choose(Some(&format!("cs_vid={ID}")), || {
            drawn = true;
            [9; 16]
        });
        assert_eq!(reused, Some(id(ID)));
        assert!(!drawn, "no random bytes drawn for a returning browser");
        let fresh = VisitorId::from_random([9; 16]);
        assert_eq!(choose(Some("cs_vid=bad"), || [9; 16]), fresh);
        assert_eq!(choose(None, || [9; 16]), fresh);
        assert_eq!(choose(None, || [0; 16]), None);
    }

    #[test]
    fn the_set_cookie_value_has_exactly_the_documented_attributes() {
        assert_eq!(
            set_cookie(id(ID)),
            format!("cs_vid={ID}; Max-Age=34560000; Path=/; HttpOnly; Secure; SameSite=Lax")
        );
        assert_eq!(MAX_AGE_SECS, 34_560_000);
    }

    fn handle(visitor: Option<VisitorId>, country: &str, user_agent: &str) -> Outcome {
        let mut p = Pipeline::new(b"salt", 100);
        let req = ClickRequest {
            ip: "203.0.113.7".parse().ok(),
            user_agent: Some(user_agent),
            country: CountryCode::parse(country).ok(),
            visitor_id: visitor,
            ..Default::default()
        };
        p.handle(&definition("abcdefg1"), &req, 1_750_000_000_000, [3; 10])
    }

    #[test]
    fn only_a_human_redirect_carrying_the_id_sets_the_cookie() {
        let v = Some(id(ID));
        assert_eq!(
            cookie_for(v, &handle(v, "DE", CHROME)),
            Some(set_cookie(id(ID)))
        );
        // 451: no click, no cookie.
        assert_eq!(cookie_for(v, &handle(v, "US", CHROME)), None);
        // A bot is redirected, without a cookie.
        let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert_eq!(cookie_for(v, &handle(v, "DE", googlebot)), None);
        // The brand turned it off: the runtime has no id to pass.
        assert_eq!(cookie_for(None, &handle(None, "DE", CHROME)), None);
    }
}
