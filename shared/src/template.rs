//! Destination templates: the brand URL a short link redirects to, with
//! macros such as `{click_id}` filled per click.
//!
//! Owns template validation (at link creation) and expansion (per click).
//! The destination never comes from the request: a template is fixed by the
//! operator, its scheme must be `https` and its host may not contain macros,
//! and every macro value is percent-encoded, so no click can change where the
//! player is sent (no open redirect, no parameter injection).
//!
//! Expanded URLs are ASCII: an internationalised host is stored in its
//! punycode form and other non-ASCII characters of the template are
//! percent-encoded (UTF-8) at parse time. A macro in the path whose value is
//! only dots (`.`, `..`) expands to nothing: it would make a dot segment that
//! browsers resolve away (`%2E%2E` too, per the URL standard), moving the
//! player to another path of the brand's site.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Everything but RFC 3986 "unreserved" characters is encoded in values.
const VALUE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest template accepted.
pub const MAX_TEMPLATE_LEN: usize = 2048;

/// A macro that may appear in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Macro {
    /// `{click_id}`: the UUIDv7 click id (empty for bots).
    ClickId,
    /// `{affiliate_id}`: the account the brand contracts with.
    AffiliateId,
    /// `{sub_affiliate_id}`: the sub-affiliate owning the link (or empty).
    SubAffiliateId,
    /// `{campaign_id}`.
    CampaignId,
    /// `{brand_id}`.
    BrandId,
    /// `{country}`: the click's country code.
    Country,
    /// `{sub1}` .. `{sub5}` (index 0..=4): sub-ids from the short link's query.
    Sub(usize),
}

impl Macro {
    /// Every macro, in documentation order.
    pub const ALL: [Macro; 11] = [
        Macro::ClickId,
        Macro::AffiliateId,
        Macro::SubAffiliateId,
        Macro::CampaignId,
        Macro::BrandId,
        Macro::Country,
        Macro::Sub(0),
        Macro::Sub(1),
        Macro::Sub(2),
        Macro::Sub(3),
        Macro::Sub(4),
    ];

    /// The name between the braces.
    pub fn name(&self) -> &'static str {
        match self {
            Macro::ClickId => "click_id",
            Macro::AffiliateId => "affiliate_id",
            Macro::SubAffiliateId => "sub_affiliate_id",
            Macro::CampaignId => "campaign_id",
            Macro::BrandId => "brand_id",
            Macro::Country => "country",
            Macro::Sub(i) => ["sub1", "sub2", "sub3", "sub4", "sub5"][(*i).min(4)],
        }
    }

    fn from_name(name: &str) -> Option<Macro> {
        Macro::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Longer than [`MAX_TEMPLATE_LEN`].
    #[error("template is longer than {MAX_TEMPLATE_LEN} characters")]
    TooLong,
    /// Not `https://…`.
    #[error("template must start with https://")]
    NotHttps,
    /// Macros, user info or an empty host in the authority part.
    #[error("template host must be a fixed host name: no macros, no user info")]
    BadHost,
    /// `{name}` with an unknown name.
    #[error("unknown macro {{{0}}}; known: click_id, affiliate_id, sub_affiliate_id, campaign_id, brand_id, country, sub1..sub5")]
    UnknownMacro(String),
    /// A `{` without `}` or the reverse.
    #[error("unbalanced braces in template")]
    UnbalancedBraces,
    /// Not a valid URL once macros are filled.
    #[error("template is not a valid URL: {0}")]
    InvalidUrl(String),
    /// Whitespace or control characters.
    #[error("template contains whitespace or control characters")]
    ControlCharacters,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Macro(Macro),
}

/// A validated destination template.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkTemplate {
    source: String,
    host: String,
    parts: Vec<Part>,
    /// Parts before this index are in the path (before `?` / `#`).
    path_end: usize,
}

/// The values macros expand to. Sub-ids must already be sanitised
/// ([`crate::subid::SubIds`]); every value is percent-encoded on expansion.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacroValues<'a> {
    /// Click id, or "" for bots.
    pub click_id: &'a str,
    /// See [`Macro::AffiliateId`].
    pub affiliate_id: &'a str,
    /// See [`Macro::SubAffiliateId`].
    pub sub_affiliate_id: &'a str,
    /// Campaign id.
    pub campaign_id: &'a str,
    /// Brand id.
    pub brand_id: &'a str,
    /// Country code.
    pub country: &'a str,
    /// sub1..sub5.
    pub subs: [&'a str; 5],
}

impl MacroValues<'_> {
    fn get(&self, m: Macro) -> &str {
        match m {
            Macro::ClickId => self.click_id,
            Macro::AffiliateId => self.affiliate_id,
            Macro::SubAffiliateId => self.sub_affiliate_id,
            Macro::CampaignId => self.campaign_id,
            Macro::BrandId => self.brand_id,
            Macro::Country => self.country,
            Macro::Sub(i) => self.subs[i.min(4)],
        }
    }
}

impl LinkTemplate {
    /// Validates a template. One without `{click_id}` gets `click_id={click_id}`
    /// appended to its query (before any `#fragment`).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TemplateError::ControlCharacters);
        }
        let rest = text
            .strip_prefix("https://")
            .ok_or(TemplateError::NotHttps)?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.is_empty() || authority.contains(['{', '}', '@', '\\']) {
            return Err(TemplateError::BadHost);
        }

        let mut parts = parse_parts(text)?;
        if !parts.contains(&Part::Macro(Macro::ClickId)) {
            append_click_id(&mut parts);
        }

        // Fill every macro with a harmless value and let the URL parser judge.
        let probe = render(&parts, |_| "x".into());
        let url = url::Url::parse(&probe).map_err(|e| TemplateError::InvalidUrl(e.to_string()))?;
        let host = match (url.scheme(), url.host_str()) {
            ("https", Some(h)) if !h.is_empty() && url.username().is_empty() => h.to_owned(),
            _ => return Err(TemplateError::BadHost),
        };
        let parts = ascii_parts(parts, &url);
        let path_end = parts
            .iter()
            .position(|p| matches!(p, Part::Literal(s) if s.contains(['?', '#'])))
            .unwrap_or(parts.len());
        let source = render(&parts, |m| format!("{{{}}}", m.name()));
        Ok(Self {
            source,
            host,
            parts,
            path_end,
        })
    }

    /// Fills the macros. Every value is percent-encoded.
    pub fn expand(&self, values: &MacroValues<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Macro(m) => {
                    let value = values.get(*m);
                    let dot_segment = !value.is_empty() && value.bytes().all(|b| b == b'.');
                    if !(i < self.path_end && dot_segment) {
                        out.extend(utf8_percent_encode(value, VALUE_ENCODE));
                    }
                }
            }
        }
        out
    }

    /// The template text (with the appended `click_id` if any).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The fixed destination host.
    pub fn host(&self) -> &str {
        &self.host
    }
}

fn parse_parts(text: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(TemplateError::UnbalancedBraces);
        }
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::UnbalancedBraces)?;
        let name = &after[..close];
        if name.contains('{') {
            return Err(TemplateError::UnbalancedBraces);
        }
        let m =
            Macro::from_name(name).ok_or_else(|| TemplateError::UnknownMacro(name.to_owned()))?;
        parts.push(Part::Macro(m));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    Ok(parts)
}

/// Inserts `click_id={click_id}` into the query, before a fragment.
fn append_click_id(parts: &mut Vec<Part>) {
    // Find the literal holding '#', if any (fragments cannot hold macros we
    // care about splitting: everything after '#' stays after it).
    let mut insert_at = parts.len();
    let mut fragment_split: Option<(usize, usize)> = None;
    for (i, p) in parts.iter().enumerate() {
        if let Part::Literal(s) = p {
            if let Some(pos) = s.find('#') {
                fragment_split = Some((i, pos));
                break;
            }
        }
    }
    if let Some((i, pos)) = fragment_split {
        if let Part::Literal(s) = &parts[i] {
            let (before, after) = (s[..pos].to_owned(), s[pos..].to_owned());
            parts[i] = Part::Literal(before);
            parts.insert(i + 1, Part::Literal(after));
            insert_at = i + 1;
        }
    }
    let before: String = render(&parts[..insert_at], |_| "x".into());
    let separator = match before.rfind('?') {
        None => "?",
        Some(_) if before.ends_with('?') || before.ends_with('&') => "",
        Some(_) => "&",
    };
    let with_path = if before
        .strip_prefix("https://")
        .is_some_and(|r| !r.contains('/'))
        && separator == "?"
    {
        "/?"
    } else {
        separator
    };
    parts.insert(insert_at, Part::Literal(format!("{with_path}click_id=")));
    parts.insert(insert_at + 1, Part::Macro(Macro::ClickId));
}

/// The parts with an ASCII host (punycode, as `url` gives it, with the
/// port if any) and every other non-ASCII character percent-encoded.
fn ascii_parts(parts: Vec<Part>, url: &url::Url) -> Vec<Part> {
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| match p {
            Part::Literal(s) if i == 0 => {
                let rest = &s["https://".len()..];
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                let host = url.host_str().unwrap_or_default();
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                let tail: String = utf8_percent_encode(&rest[end..], CONTROLS).collect();
                Part::Literal(format!("https://{host}{port}{tail}"))
            }
            Part::Literal(s) => Part::Literal(utf8_percent_encode(&s, CONTROLS).collect()),
            m => m,
        })
        .collect()
}

fn render(parts: &[Part], fill: impl Fn(Macro) -> String) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Literal(s) => out.push_str(s),
            Part::Macro(m) => out.push_str(&fill(*m)),
        }
    }
    out
}

impl fmt::Debug for LinkTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkTemplate({})", self.source)
    }
}

impl fmt::Display for LinkTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for LinkTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for LinkTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_dot_only_sub_id_in_the_path_expands_to_nothing_but_stays_in_the_query() {
        let t = LinkTemplate::parse("https://brand.example/lp/{sub1}/x?s={sub1}&cid={click_id}")
            .expect("valid");
        for dots in [".", ".."] {
            let url = t.expand(&values("c-1", [dots, "", "", "", ""]));
            assert_eq!(url, format!("https://brand.example/lp//x?s={dots}&cid=c-1"));
            let parsed = url::Url::parse(&url).expect("url");
            assert_eq!(parsed.path(), "/lp//x", "no dot segment resolved away");
        }
        let url = t.expand(&values("c-1", ["a..b", "", "", "", ""]));
        assert!(url.starts_with("https://brand.example/lp/a..b/x?"), "{url}");
    }

    #[test]
    fn an_international_host_and_path_become_ascii() {
        let t =
            LinkTemplate::parse("https://bücher.example/spiele/glück?ref={sub1}").expect("valid");
        assert_eq!(t.host(), "xn--bcher-kva.example");
        let url = t.expand(&values("c-2", ["ä", "", "", "", ""]));
        assert!(url.is_ascii(), "{url}");
        assert_eq!(
            url,
            "https://xn--bcher-kva.example/spiele/gl%C3%BCck?ref=%C3%A4&click_id=c-2"
        );
        assert_eq!(
            t.as_str(),
            "https://xn--bcher-kva.example/spiele/gl%C3%BCck?ref={sub1}&click_id={click_id}"
        );
    }

    fn values<'a>(click_id: &'a str, subs: [&'a str; 5]) -> MacroValues<'a> {
        MacroValues {
            click_id,
            affiliate_id: "aff-1",
            sub_affiliate_id: "",
            campaign_id: "camp-9",
            brand_id: "brand-3",
            country: "DE",
            subs,
        }
    }

    #[test]
    fn macros_are_filled_in_place() {
        let t = LinkTemplate::parse(
            "https://casino.example/welcome?cid={click_id}&a={affiliate_id}&c={campaign_id}&geo={country}&s1={sub1}",
        )
        .expect("valid");
        let url = t.expand(&values("0190-abc", ["fb", "", "", "", ""]));
        assert_eq!(
            url,
            "https://casino.example/welcome?cid=0190-abc&a=aff-1&c=camp-9&geo=DE&s1=fb"
        );
    }

    #[test]
    fn a_template_without_click_id_gets_it_appended_before_the_fragment() {
        let cases = [
            ("https://b.example/x", "https://b.example/x?click_id=ID"),
            ("https://b.example", "https://b.example/?click_id=ID"),
            (
                "https://b.example/x?a=1",
                "https://b.example/x?a=1&click_id=ID",
            ),
            ("https://b.example/x?", "https://b.example/x?click_id=ID"),
            (
                "https://b.example/x?a=1#top",
                "https://b.example/x?a=1&click_id=ID#top",
            ),
            (
                "https://b.example/#/spa?x=1",
                "https://b.example/?click_id=ID#/spa?x=1",
            ),
        ];
        for (template, expected) in cases {
            let t = LinkTemplate::parse(template).expect(template);
            assert_eq!(t.expand(&values("ID", [""; 5])), expected, "{template}");
        }
    }

    #[test]
    fn templates_that_could_redirect_elsewhere_are_refused() {
        let cases = [
            ("http://b.example/", TemplateError::NotHttps),
            ("javascript:alert(1)", TemplateError::NotHttps),
            ("//b.example/", TemplateError::NotHttps),
            ("https://{sub1}/", TemplateError::BadHost),
            ("https://b.example.{sub1}/", TemplateError::BadHost),
            ("https://user@evil.example/", TemplateError::BadHost),
            ("https:///path", TemplateError::BadHost),
            (
                "https://b.example/{evil}",
                TemplateError::UnknownMacro("evil".into()),
            ),
            (
                "https://b.example/{click_id",
                TemplateError::UnbalancedBraces,
            ),
            ("https://b.example/}", TemplateError::UnbalancedBraces),
            ("https://b.example/ x", TemplateError::ControlCharacters),
        ];
        for (template, expected) in cases {
            assert_eq!(LinkTemplate::parse(template), Err(expected), "{template}");
        }
    }

    #[test]
    fn reserved_characters_in_values_are_encoded() {
        let t = LinkTemplate::parse("https://b.example/p?s={sub1}").expect("valid");
        let url = t.expand(&values("id", ["a&b=c#d/../e?f @g", "", "", "", ""]));
        assert_eq!(
            url,
            "https://b.example/p?s=a%26b%3Dc%23d%2F..%2Fe%3Ff%20%40g&click_id=id"
        );
    }

    fn template_strategy() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            Just("{click_id}".to_owned()),
            Just("{sub1}".to_owned()),
            Just("{sub2}".to_owned()),
            Just("{country}".to_owned()),
            "[a-z0-9]{1,8}",
        ];
        (
            proptest::collection::vec(seg.clone(), 0..4),
            proptest::collection::vec(("[a-z]{1,5}", seg), 0..4),
        )
            .prop_map(|(path, query)| {
                let mut t = String::from("https://brand.example/");
                t.push_str(&path.join("/"));
                if !query.is_empty() {
                    t.push('?');
                    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    t.push_str(&q.join("&"));
                }
                t
            })
    }

    proptest! {
        #[test]
        fn expansion_never_changes_the_host_or_the_url_structure(
            template in template_strategy(),
            subs in proptest::array::uniform5(any::<String>()),
            click in any::<String>(),
        ) {
            let t = LinkTemplate::parse(&template).expect("generated templates are valid");
            let blank = url::Url::parse(&t.expand(&MacroValues::default())).expect("blank parses");
            let s: [&str; 5] = [&subs[0], &subs[1], &subs[2], &subs[3], &subs[4]];
            let expanded = t.expand(&values(&click, s));
            let url = url::Url::parse(&expanded).expect("expansion is a valid URL");
            prop_assert_eq!(url.scheme(), "https");
            prop_assert_eq!(url.host_str(), Some("brand.example"));
            prop_assert!(url.fragment().is_none());
            // Same number of path segments and the same query keys as with
            // empty values: no value can add a segment or a parameter.
            let segs = |u: &url::Url| u.path_segments().map(|s| s.count()).unwrap_or(0);
            prop_assert_eq!(segs(&url), segs(&blank));
            let keys = |u: &url::Url| u.query_pairs().map(|(k, _)| k.into_owned()).collect::<Vec<_>>();
            prop_assert_eq!(keys(&url), keys(&blank));
            // And the click id reads back exactly.
            let got = url.query_pairs().find(|(k, _)| k == "click_id").map(|(_, v)| v.into_owned());
            if let Some(got) = got {
                if !template.contains("{click_id}") {
                    prop_assert_eq!(got, click);
                }
            }
        }
    }
}
