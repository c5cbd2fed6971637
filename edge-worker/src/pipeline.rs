//! The click hot path: from a resolved link and the request's facts to the
//! player's answer (302 or 451) and the record to deliver.
//!
//! Owns the order of decisions: geo first (a blocked request gets no click
//! id), then bot screening (bots are redirected without a click id and
//! recorded as bots), then duplicate marking, id issue and template
//! expansion. Pure and native-testable: the runtime passes time and random
//! bytes, and does the IO. Benchmarked in `benches/`.

use std::net::IpAddr;

use clickstitch_shared::bot::{self, BotVerdict};
use clickstitch_shared::click::{
    truncate_utf8, MAX_ACCEPT_LANGUAGE, MAX_COLO, MAX_PLACE, MAX_REFERRER, MAX_USER_AGENT,
};
use clickstitch_shared::fingerprint::{
    device_fingerprint, identity_hash, DeviceSignals, VisitorId,
};
use clickstitch_shared::geo::{self, GeoDecision};
use clickstitch_shared::subid::SubIds;
use clickstitch_shared::{
    Click, ClickIdGenerator, CountryCode, GeoBlock, LinkDefinition, MacroValues,
};
use clickstitch_shared::{RawClick, RawGeoBlock};

use crate::buffer::EdgeRecord;
use crate::dedup::DuplicateFilter;

/// What the runtime read from the request (headers, `cf`, URL query).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClickRequest<'a> {
    /// Whether the method is HEAD.
    pub is_head: bool,
    /// The short link's query string (without `?`).
    pub query: &'a str,
    /// `CF-Connecting-IP`.
    pub ip: Option<IpAddr>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Referer`.
    pub referrer: &'a str,
    /// `Accept-Language`.
    pub accept_language: &'a str,
    /// `Sec-CH-UA`.
    pub sec_ch_ua: &'a str,
    /// `Sec-CH-UA-Platform`.
    pub sec_ch_ua_platform: &'a str,
    /// `Sec-CH-UA-Mobile`.
    pub sec_ch_ua_mobile: &'a str,
    /// `cf.country`, or `CF-IPCountry` when `cf` has none.
    pub country: Option<CountryCode>,
    /// The client-identity facts (IP, country, `cf`) were not believed: the
    /// request did not come through the trusted proxy (`crate::trust`). They
    /// are then absent here, and the geo check treats the location as
    /// unverified ([`geo::decide_unverified`]).
    pub identity_unverified: bool,
    /// `cf.region`.
    pub region: &'a str,
    /// `cf.city`.
    pub city: &'a str,
    /// `cf.asn`.
    pub asn: u32,
    /// `cf.colo`.
    pub colo: &'a str,
    /// `cf.tlsClientCiphersSha1`.
    pub tls_client_ciphers_sha1: &'a str,
    /// `cf.tlsClientExtensionsSha1`.
    pub tls_client_extensions_sha1: &'a str,
    /// Cloudflare says this is a verified bot (`cf.botManagement.verifiedBot`).
    pub verified_bot: bool,
    /// The browser's visitor id: read from its cookie, or newly drawn by the
    /// runtime when the brand allows the cookie. `None` when the brand does
    /// not (the runtime then neither reads nor sets the cookie).
    pub visitor_id: Option<VisitorId>,
}

/// The answer to the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 302 to this URL.
    Redirect(String),
    /// 451: the country may not be served.
    UnavailableForLegalReasons,
}

/// The answer and the record to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What the player gets.
    pub answer: Answer,
    /// What goes to the aggregator.
    pub record: EdgeRecord,
}

/// Per-isolate state of the hot path.
#[derive(Debug)]
pub struct Pipeline {
    ids: ClickIdGenerator,
    duplicates: DuplicateFilter,
    salt: Vec<u8>,
}

impl Pipeline {
    /// A pipeline hashing identities with `identity_salt`, remembering up to
    /// `dedup_capacity` visitor/link pairs.
    pub fn new(identity_salt: &[u8], dedup_capacity: usize) -> Self {
        bot::warm_up();
        Self {
            ids: ClickIdGenerator::new(),
            duplicates: DuplicateFilter::new(dedup_capacity),
            salt: identity_salt.to_vec(),
        }
    }

    /// Handles one request for `link` at `now_ms` with 10 random bytes.
    pub fn handle(
        &mut self,
        link: &LinkDefinition,
        req: &ClickRequest<'_>,
        now_ms: u64,
        random: [u8; 10],
    ) -> Outcome {
        let id = self.ids.next_id(now_ms, random);
        let country = req.country.unwrap_or(CountryCode::UNKNOWN);

        let geo_decision = if req.identity_unverified {
            geo::decide_unverified(&link.geo, &link.jurisdiction)
        } else {
            geo::decide(req.country, &link.geo, &link.jurisdiction)
        };
        if let GeoDecision::Blocked(reason) = geo_decision {
            let block = GeoBlock {
                event_id: id,
                link_code: link.code.clone(),
                brand_id: link.brand_id,
                affiliate_id: link.affiliate_id,
                campaign_id: link.campaign_id,
                country,
                reason,
            };
            return Outcome {
                answer: Answer::UnavailableForLegalReasons,
                record: EdgeRecord::GeoBlock(RawGeoBlock::from(&block)),
            };
        }

        let user_agent = truncate_utf8(req.user_agent.unwrap_or(""), MAX_USER_AGENT);
        let verdict = match bot::screen(req.is_head, req.user_agent) {
            BotVerdict::Human if req.verified_bot => BotVerdict::Bot(bot::BotReason::KnownBot),
            v => v,
        };
        let ip_text = req.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let identity = identity_hash(&self.salt, &ip_text, user_agent);
        // Bots are not clicks: they neither count as repeats nor make a
        // later human click a repeat.
        let is_duplicate =
            !verdict.is_bot() && self.duplicates.observe(identity, &link.code, now_ms);
        let sub_ids = SubIds::from_query(req.query);

        let click = Click {
            click_id: id,
            link_code: link.code.clone(),
            brand_id: link.brand_id,
            affiliate_id: link.affiliate_id,
            sub_affiliate_id: link.sub_affiliate_id,
            campaign_id: link.campaign_id,
            sub_ids,
            country,
            region: clean(req.region, MAX_PLACE),
            city: clean(req.city, MAX_PLACE),
            asn: req.asn,
            colo: clean(req.colo, MAX_COLO),
            ip: req.ip.map(|ip| link.ip_storage.apply(ip)),
            user_agent: clean(user_agent, MAX_USER_AGENT),
            referrer: clean(req.referrer, MAX_REFERRER),
            accept_language: clean(req.accept_language, MAX_ACCEPT_LANGUAGE),
            device_fingerprint: device_fingerprint(&DeviceSignals {
                user_agent,
                accept_language: req.accept_language,
                sec_ch_ua: req.sec_ch_ua,
                sec_ch_ua_platform: req.sec_ch_ua_platform,
                sec_ch_ua_mobile: req.sec_ch_ua_mobile,
                tls_client_ciphers_sha1: req.tls_client_ciphers_sha1,
                tls_client_extensions_sha1: req.tls_client_extensions_sha1,
            }),
            identity_hash: identity,
            // A bot's cookie identifies nothing worth keeping.
            visitor_id: if verdict.is_bot() {
                None
            } else {
                req.visitor_id
            },
            bot: verdict,
            is_duplicate,
        };

        let click_id_text = click.click_id.to_string();
        let affiliate = link.affiliate_id.to_string();
        let sub_affiliate = link
            .sub_affiliate_id
            .map(|a| a.to_string())
            .unwrap_or_default();
        let campaign = link.campaign_id.to_string();
        let brand = link.brand_id.to_string();
        let location = link.destination.expand(&MacroValues {
            click_id: if verdict.is_bot() { "" } else { &click_id_text },
            affiliate_id: &affiliate,
            sub_affiliate_id: &sub_affiliate,
            campaign_id: &campaign,
            brand_id: &brand,
            country: country.as_str(),
            subs: click.sub_ids.as_strs(),
        });
        Outcome {
            answer: Answer::Redirect(location),
            record: EdgeRecord::Click(Box::new(RawClick::from(&click))),
        }
    }
}

/// Cuts to `max` bytes and drops control characters (the aggregator refuses
/// them, and a header value should not carry them anyway).
fn clean(text: &str, max: usize) -> String {
    let cut = truncate_utf8(text, max);
    if cut.chars().any(char::is_control) {
        cut.chars().filter(|c| !c.is_control()).collect()
    } else {
        cut.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link_cache::tests::definition;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    fn request(country: &str) -> ClickRequest<'static> {
        ClickRequest {
            query: "sub1=fb&sub2=a%20b",
            ip: "203.0.113.7".parse().ok(),
            user_agent: Some(CHROME),
            accept_language: "de-DE",
            country: CountryCode::parse(country).ok(),
            colo: "FRA",
            asn: 3320,
            ..Default::default()
        }
    }

    fn click_of(o: &Outcome) -> Click {
        match &o.record {
            EdgeRecord::Click(raw) => {
                Click::try_from((**raw).clone()).expect("edge records are valid")
            }
            other => panic!("expected a click, got {other:?}"),
        }
    }

    #[test]
    fn a_human_click_is_redirected_with_its_click_id_and_sub_ids() {
        let mut p = Pipeline::new(b"salt", 100);
        let def = definition("abcdefg1");
        let o = p.handle(&def, &request("DE"), 1_750_000_000_000, [3; 10]);
        let click = click_of(&o);
        assert_eq!(click.bot, BotVerdict::Human);
        assert_eq!(click.sub_ids.as_strs()[..2], ["fb", "ab"]);
        assert_eq!(
            o.answer,
            Answer::Redirect(format!("https://brand.example/?c={}", click.click_id))
        );
        assert_eq!(click.clicked_at_ms(), 1_750_000_000_000);
    }

    #[test]
    fn a_restricted_country_gets_451_and_a_geo_block_record_only() {
        let mut p = Pipeline::new(b"salt", 100);
        let o = p.handle(
            &definition("abcdefg1"),
            &request("US"),
            1_750_000_000_000,
            [3; 10],
        );
        assert_eq!(o.answer, Answer::UnavailableForLegalReasons);
        match o.record {
            EdgeRecord::GeoBlock(g) => {
                let g = GeoBlock::try_from(g).expect("valid");
                assert_eq!(g.reason.as_str(), "jurisdiction_restricted");
            }
            other => panic!("expected a geo block, got {other:?}"),
        }
    }

    #[test]
    fn a_bot_is_redirected_without_a_click_id_and_recorded_as_a_bot() {
        let mut p = Pipeline::new(b"salt", 100);
        let mut req = request("DE");
        req.user_agent =
            Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        let o = p.handle(&definition("abcdefg1"), &req, 1_750_000_000_000, [3; 10]);
        assert_eq!(
            o.answer,
            Answer::Redirect("https://brand.example/?c=".into())
        );
        assert!(click_of(&o).bot.is_bot());
    }

    #[test]
    fn a_second_click_by_the_same_visitor_is_a_duplicate_but_still_gets_an_id() {
        let mut p = Pipeline::new(b"salt", 100);
        let def = definition("abcdefg1");
        let first = click_of(&p.handle(&def, &request("DE"), 1_750_000_000_000, [1; 10]));
        let second_o = p.handle(&def, &request("DE"), 1_750_000_060_000, [2; 10]);
        let second = click_of(&second_o);
        assert!(!first.is_duplicate && second.is_duplicate);
        assert_ne!(first.click_id, second.click_id);
        assert!(
            matches!(second_o.answer, Answer::Redirect(ref l) if l.ends_with(&second.click_id.to_string()))
        );
    }

    #[test]
    fn an_unverified_request_is_blocked_where_the_brand_restricts_countries() {
        let mut p = Pipeline::new(b"salt", 100);
        let unverified = ClickRequest {
            identity_unverified: true,
            ip: None,
            country: None,
            ..request("DE")
        };
        let o = p.handle(
            &definition("abcdefg1"),
            &unverified,
            1_750_000_000_000,
            [3; 10],
        );
        assert_eq!(o.answer, Answer::UnavailableForLegalReasons);
        match o.record {
            EdgeRecord::GeoBlock(g) => {
                let g = GeoBlock::try_from(g).expect("valid");
                assert_eq!(g.reason.as_str(), "unknown_country");
            }
            other => panic!("expected a geo block, got {other:?}"),
        }
        let mut open = definition("abcdefg1");
        open.jurisdiction.restricted_countries.clear();
        open.jurisdiction.block_unknown_country = false;
        let click = click_of(&p.handle(&open, &unverified, 1_750_000_000_000, [4; 10]));
        assert_eq!((click.ip, click.country), (None, CountryCode::UNKNOWN));
    }

    #[test]
    fn truncated_ip_storage_applies_to_the_record() {
        let mut p = Pipeline::new(b"salt", 100);
        let mut def = definition("abcdefg1");
        def.ip_storage = clickstitch_shared::ip::IpStorage::Truncated;
        let click = click_of(&p.handle(&def, &request("DE"), 1_750_000_000_000, [3; 10]));
        assert_eq!(
            click.ip.map(|i| i.to_string()).as_deref(),
            Some("203.0.113.0")
        );
    }
}
