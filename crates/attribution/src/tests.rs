//! Scenario tests of the attribution decision: touchpoints, windows,
//! reasons, eligibility, models over real rules, and the example rules
//! files in `config/attribution/`. Touches nothing outside tests.

use std::path::Path;

use clickstitch_shared::fingerprint::VisitorId;
use clickstitch_shared::{
    AffiliateId, BrandId, CampaignId, ClickId, ClickIdGenerator, CountryCode, ShortCode,
};
use proptest::prelude::*;

use super::credit::DAY_MS;
use super::*;

const REG: u64 = 1_750_000_000_000;
const HOUR: u64 = 3_600_000;

fn uuid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn brand(n: u128) -> BrandId {
    BrandId::from(uuid(0xb000 + n))
}

fn aff(n: u128) -> AffiliateId {
    AffiliateId::from(uuid(0xa000 + n))
}

fn fp(n: u8) -> VisitorId {
    VisitorId::parse(&format!("{n:032x}")).expect("visitor id")
}

fn cc(c: &str) -> CountryCode {
    CountryCode::parse(c).expect("country")
}

fn tt(t: &str) -> TrafficType {
    TrafficType::parse(t).expect("traffic type")
}

/// A click id at `ms`; `salt` keeps ids of the same millisecond apart.
fn id_at(ms: u64, salt: u8) -> ClickId {
    ClickIdGenerator::new().next_id(ms, [salt; 10])
}

/// A human click of brand 1, affiliate `a`, device 1, `days_before` the
/// registration.
fn click(salt: u8, days_before: u64, a: u128) -> FoundClick {
    click_at(salt, REG - days_before * DAY_MS, a)
}

fn click_at(salt: u8, ms: u64, a: u128) -> FoundClick {
    FoundClick {
        click_id: id_at(ms, salt),
        brand_id: brand(1),
        affiliate_id: aff(a),
        sub_affiliate_id: None,
        campaign_id: CampaignId::from(uuid(0xc001)),
        link_code: ShortCode::parse("abcDEF123").expect("code"),
        visitor_id: Some(fp(1)),
        is_bot: false,
        is_duplicate: false,
        quarantined: false,
    }
}

fn registration(reported: &[&FoundClick]) -> Registration {
    Registration {
        brand_id: brand(1),
        country: cc("DE"),
        registered_at_ms: REG,
        reported_click_ids: reported.iter().map(|c| c.click_id).collect(),
    }
}

const GLOBAL: &str = r#"{"version": 1, "window_days": 30, "model": {"type": "last_click"}}"#;

fn rules_with(extra: &[(&str, &str)]) -> RuleSet {
    let mut files = vec![("default/default.json", GLOBAL)];
    files.extend_from_slice(extra);
    RuleSet::from_files(
        Path::new("/rules"),
        files.iter().map(|(f, b)| (*f, b.as_bytes())),
    )
    .expect("valid rules")
}

/// Global default with `model` (JSON) and the given window.
fn rules_model(model: &str, window_days: u32) -> RuleSet {
    let text = format!(r#"{{"version": 5, "window_days": {window_days}, "model": {model}}}"#);
    RuleSet::from_files(
        Path::new("/rules"),
        [("default/default.json", text.as_bytes())],
    )
    .expect("valid rules")
}

fn decide(reported: &[&FoundClick], found: &[FoundClick], rules: &RuleSet) -> Decision {
    attribute(&registration(reported), found, &TrafficTypes::new(), rules)
}

fn attributed(d: Decision) -> Attribution {
    match d {
        Decision::Attributed(a) => a,
        Decision::Unattributed(u) => panic!("unattributed: {}", u.reason),
    }
}

fn unattributed(d: Decision) -> Unattributed {
    match d {
        Decision::Unattributed(u) => u,
        Decision::Attributed(a) => panic!("attributed: {:?}", a.credits()),
    }
}

fn credits(a: &Attribution) -> Vec<(AffiliateId, i64)> {
    a.credits()
        .iter()
        .map(|c| (c.affiliate_id, c.credit.get()))
        .collect()
}

fn tp_bps(a: &Attribution) -> Vec<i64> {
    a.touchpoints().iter().map(|t| t.credit.get()).collect()
}

/// The worked example of docs/attribution.md: affiliates 1, 2, 3 clicked
/// 17, 10 and 3 days before the registration.
fn three_clicks() -> [FoundClick; 3] {
    [click(1, 17, 1), click(2, 10, 2), click(3, 3, 3)]
}

#[test]
fn a_reported_click_inside_the_window_credits_its_affiliate_pending_kyc() {
    let c = click(1, 3, 1);
    let a = attributed(decide(&[&c], std::slice::from_ref(&c), &rules_with(&[])));
    assert_eq!(credits(&a), [(aff(1), 10_000)]);
    assert_eq!(a.status(), AttributionStatus::PendingKyc);
    assert_eq!(a.rules().file(), "default/default.json");
    assert_eq!(a.rules().version(), 1);
    assert_eq!(a.basis().window_days, 30);
    assert_eq!(a.touchpoints()[0].origin, Origin::Reported);
}

#[test]
fn each_model_credits_one_touchpoint_fully() {
    for model in [
        r#"{"type":"first_click"}"#,
        r#"{"type":"last_click"}"#,
        r#"{"type":"linear"}"#,
        r#"{"type":"time_decay","half_life_days":7}"#,
        r#"{"type":"position_based"}"#,
    ] {
        let c = click(1, 5, 1);
        let a = attributed(decide(
            &[&c],
            std::slice::from_ref(&c),
            &rules_model(model, 30),
        ));
        assert_eq!(tp_bps(&a), [10_000], "{model}");
    }
}

#[test]
fn each_model_credits_two_touchpoints_as_documented() {
    // Affiliate 1 at −10 days, affiliate 2 at −3 days (one half-life apart).
    let found = [click(1, 10, 1), click(2, 3, 2)];
    for (model, want) in [
        (r#"{"type":"first_click"}"#, [10_000, 0]),
        (r#"{"type":"last_click"}"#, [0, 10_000]),
        (r#"{"type":"linear"}"#, [5_000, 5_000]),
        (
            r#"{"type":"time_decay","half_life_days":7}"#,
            [3_333, 6_667],
        ),
        (r#"{"type":"position_based"}"#, [5_000, 5_000]),
    ] {
        let a = attributed(decide(
            &[&found[0], &found[1]],
            &found,
            &rules_model(model, 30),
        ));
        assert_eq!(tp_bps(&a), want, "{model}");
    }
}

#[test]
fn each_model_credits_three_touchpoints_as_documented() {
    let found = three_clicks();
    let reported: Vec<&FoundClick> = found.iter().collect();
    for (model, want) in [
        (r#"{"type":"first_click"}"#, [10_000, 0, 0]),
        (r#"{"type":"last_click"}"#, [0, 0, 10_000]),
        (r#"{"type":"linear"}"#, [3_333, 3_333, 3_334]),
        (
            r#"{"type":"time_decay","half_life_days":7}"#,
            [1_429, 2_857, 5_714],
        ),
        (r#"{"type":"position_based"}"#, [4_000, 2_000, 4_000]),
    ] {
        let a = attributed(decide(&reported, &found, &rules_model(model, 30)));
        assert_eq!(tp_bps(&a), want, "{model}");
        let ids: Vec<_> = a.touchpoints().iter().map(|t| t.affiliate_id).collect();
        assert_eq!(ids, [aff(1), aff(2), aff(3)], "time order");
    }
}

#[test]
fn touchpoints_of_the_same_affiliate_merge_into_one_credit() {
    // Affiliate 1 twice, affiliate 2 in between; linear: 3333 + 3334 for 1.
    let found = [click(1, 17, 1), click(2, 10, 2), click(3, 3, 1)];
    let reported: Vec<&FoundClick> = found.iter().collect();
    let a = attributed(decide(
        &reported,
        &found,
        &rules_model(r#"{"type":"linear"}"#, 30),
    ));
    assert_eq!(credits(&a), [(aff(1), 6_667), (aff(2), 3_333)]);
    assert_eq!(a.credits()[0].touchpoints, 2);
    // A sub-affiliate link of the same root is a separate pair.
    let mut sub = click(4, 1, 1);
    sub.sub_affiliate_id = Some(aff(11));
    let found = [found[0].clone(), sub];
    let reported: Vec<&FoundClick> = found.iter().collect();
    let a = attributed(decide(
        &reported,
        &found,
        &rules_model(r#"{"type":"linear"}"#, 30),
    ));
    assert_eq!(a.credits().len(), 2);
    assert_eq!(a.credits()[1].sub_affiliate_id, Some(aff(11)));
}

#[test]
fn a_click_exactly_at_the_window_boundary_counts_and_one_ms_older_does_not() {
    let rules = rules_with(&[]);
    let edge = click_at(1, REG - 30 * DAY_MS, 1);
    attributed(decide(&[&edge], std::slice::from_ref(&edge), &rules));
    let older = click_at(1, REG - 30 * DAY_MS - 1, 1);
    let u = unattributed(decide(&[&older], std::slice::from_ref(&older), &rules));
    assert_eq!(
        u.reason,
        UnattributedReason::OutsideWindow {
            click_id: older.click_id,
            by_ms: 1,
            window_days: 30
        }
    );
    // A click in the registration's own millisecond counts too.
    let same = click_at(1, REG, 1);
    attributed(decide(&[&same], std::slice::from_ref(&same), &rules));
}

#[test]
fn a_click_outside_the_window_is_unattributed_with_how_far_outside() {
    let old = click_at(1, REG - 32 * DAY_MS - 3 * HOUR, 1);
    let u = unattributed(decide(
        &[&old],
        std::slice::from_ref(&old),
        &rules_with(&[]),
    ));
    assert_eq!(u.reason.code(), "outside_window");
    assert_eq!(
        u.reason.to_string(),
        format!(
            "click {} is 2d 3h 0m 0.000s older than the 30-day window",
            old.click_id
        )
    );
    assert_eq!(
        u.basis.reported[0].check,
        ClickCheck::OutsideWindow {
            by_ms: 2 * DAY_MS + 3 * HOUR
        }
    );
    assert_eq!(
        u.basis.rules.file(),
        "default/default.json",
        "rules recorded"
    );
}

#[test]
fn a_click_after_the_registration_is_unattributed() {
    let late = click_at(1, REG + 1_500, 1);
    let u = unattributed(decide(
        &[&late],
        std::slice::from_ref(&late),
        &rules_with(&[]),
    ));
    assert_eq!(
        u.reason,
        UnattributedReason::ClickAfterRegistration {
            click_id: late.click_id,
            by_ms: 1_500
        }
    );
}

#[test]
fn a_click_of_another_brand_is_unattributed_with_the_reason() {
    let mut c = click(1, 3, 1);
    c.brand_id = brand(2);
    let u = unattributed(decide(&[&c], std::slice::from_ref(&c), &rules_with(&[])));
    assert_eq!(u.reason, UnattributedReason::ClickOfAnotherBrand);
    assert_eq!(u.reason.code(), "click_of_another_brand");
}

#[test]
fn no_click_and_unknown_clicks_are_unattributed_with_their_reasons() {
    let rules = rules_with(&[]);
    let u = unattributed(decide(&[], &[], &rules));
    assert_eq!(u.reason, UnattributedReason::NoClickReported);
    assert_eq!(u.basis.fingerprint, FingerprintOutcome::NoDevice);
    let ghost = click(1, 3, 1);
    let u = unattributed(decide(&[&ghost], &[], &rules));
    assert_eq!(u.reason, UnattributedReason::ClickNotFound);
    assert_eq!(u.basis.reported[0].check, ClickCheck::NotFound);
}

#[test]
fn the_reason_reflects_the_reported_click_that_got_furthest() {
    let rules = rules_with(&[]);
    let ghost = click(1, 3, 1);
    let mut other = click(2, 3, 2);
    other.brand_id = brand(2);
    let old = click(3, 40, 3);
    let u = unattributed(decide(
        &[&ghost, &other, &old],
        &[other.clone(), old.clone()],
        &rules,
    ));
    assert_eq!(u.reason.code(), "outside_window");
    assert_eq!(
        u.basis.reported.len(),
        3,
        "every reported id is accounted for"
    );
    let u = unattributed(decide(
        &[&ghost, &other],
        std::slice::from_ref(&other),
        &rules,
    ));
    assert_eq!(u.reason.code(), "click_of_another_brand");
}

#[test]
fn bot_clicks_are_never_touchpoints() {
    let rules = rules_with(&[]);
    let mut bot = click(1, 1, 1);
    bot.is_bot = true;
    let human = click(2, 5, 2);
    let a = attributed(decide(
        &[&bot, &human],
        &[bot.clone(), human.clone()],
        &rules,
    ));
    assert_eq!(
        credits(&a),
        [(aff(2), 10_000)],
        "last click is the human one"
    );
    assert_eq!(a.basis().reported[0].check, ClickCheck::Bot);
    let u = unattributed(decide(&[&bot], std::slice::from_ref(&bot), &rules));
    assert_eq!(u.reason, UnattributedReason::OnlyBotClicks);
    // A bot never lends its fingerprint, nor counts as a match.
    let mut bot_match = click(3, 2, 3);
    bot_match.is_bot = true;
    let a = attributed(decide(&[&human], &[human.clone(), bot_match], &rules));
    assert_eq!(a.touchpoints().len(), 1);
}

#[test]
fn fingerprint_matched_clicks_count_only_inside_the_window_and_on_the_same_brand() {
    let rules = rules_model(r#"{"type":"linear"}"#, 30);
    let reported = click(1, 10, 1);
    let matched = click(2, 2, 2);
    let too_old = click(3, 31, 3);
    let mut other_brand = click(4, 2, 4);
    other_brand.brand_id = brand(2);
    let mut other_device = click(5, 2, 5);
    other_device.visitor_id = Some(fp(2));
    let found = [
        reported.clone(),
        matched.clone(),
        too_old,
        other_brand,
        other_device,
    ];
    let a = attributed(decide(&[&reported], &found, &rules));
    let tps: Vec<_> = a
        .touchpoints()
        .iter()
        .map(|t| (t.affiliate_id, t.origin))
        .collect();
    assert_eq!(
        tps,
        [
            (aff(1), Origin::Reported),
            (aff(2), Origin::FingerprintMatch)
        ]
    );
    assert_eq!(
        a.basis().fingerprint,
        FingerprintOutcome::Matched {
            added: 1,
            duplicates_skipped: 0
        }
    );
    assert_eq!(credits(&a), [(aff(1), 5_000), (aff(2), 5_000)]);
}

#[test]
fn an_old_reported_click_still_identifies_the_device_for_recent_matches() {
    let rules = rules_with(&[]);
    let old = click(1, 45, 1);
    let recent = click(2, 4, 2);
    let a = attributed(decide(&[&old], &[old.clone(), recent], &rules));
    assert_eq!(credits(&a), [(aff(2), 10_000)]);
    assert!(matches!(
        a.basis().reported[0].check,
        ClickCheck::OutsideWindow { .. }
    ));
}

#[test]
fn duplicate_matches_are_skipped_and_too_many_matches_are_all_ignored() {
    let rules = rules_with(&[(
        "default/eu.json",
        r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"linear"},
            "fingerprint_matching":{"max_extra_touchpoints":2}}"#,
    )]);
    let reported = click(1, 10, 1);
    let mut dup = click(2, 9, 1);
    dup.is_duplicate = true;
    let found = [reported.clone(), dup.clone(), click(3, 5, 2)];
    let a = attributed(decide(&[&reported], &found, &rules));
    assert_eq!(
        a.basis().fingerprint,
        FingerprintOutcome::Matched {
            added: 1,
            duplicates_skipped: 1
        }
    );
    assert_eq!(a.touchpoints().len(), 2);
    let found = [
        reported.clone(),
        click(3, 5, 2),
        click(4, 4, 3),
        click(5, 3, 4),
    ];
    let a = attributed(decide(&[&reported], &found, &rules));
    assert_eq!(
        a.basis().fingerprint,
        FingerprintOutcome::TooMany {
            candidates: 3,
            max: 2
        }
    );
    assert_eq!(credits(&a), [(aff(1), 10_000)]);
}

#[test]
fn fingerprint_matching_can_be_turned_off() {
    let rules = rules_model(r#"{"type":"last_click"}"#, 30);
    let off = RuleSet::from_files(
        Path::new("/rules"),
        [(
            "default/default.json",
            br#"{"version":1,"window_days":30,"model":{"type":"last_click"},"fingerprint_matching":{"enabled":false}}"#.as_slice(),
        )],
    )
    .expect("valid");
    let reported = click(1, 10, 1);
    let found = [reported.clone(), click(2, 2, 2)];
    assert_eq!(
        credits(&attributed(decide(&[&reported], &found, &rules))),
        [(aff(2), 10_000)]
    );
    let a = attributed(decide(&[&reported], &found, &off));
    assert_eq!(credits(&a), [(aff(1), 10_000)]);
    assert_eq!(a.basis().fingerprint, FingerprintOutcome::Disabled);
    assert!(visitor_query(&registration(&[&reported]), &found, &off).is_none());
}

#[test]
fn the_visitor_query_covers_the_window_and_the_reported_devices() {
    let rules = rules_with(&[]);
    let a = click(1, 10, 1);
    let mut b = click(2, 50, 2);
    b.visitor_id = Some(fp(7));
    let mut bot = click(3, 5, 3);
    bot.is_bot = true;
    bot.visitor_id = Some(fp(9));
    let q = visitor_query(
        &registration(&[&a, &b, &bot]),
        &[a.clone(), b.clone(), bot.clone()],
        &rules,
    )
    .expect("query");
    assert_eq!(q.brand_id, brand(1));
    assert_eq!(q.visitors, [fp(1), fp(7)]);
    assert_eq!((q.from_ms, q.to_ms), (REG - 30 * DAY_MS, REG));
    assert_eq!(q.limit, 10 + 3 + 1);
    assert!(visitor_query(&registration(&[&bot]), &[bot.clone()], &rules).is_none());
}

#[test]
fn an_ineligible_traffic_type_is_excluded_and_the_rest_share_the_credit() {
    let rules = rules_with(&[(
        "default/eu.json",
        r#"{"version":2,"countries":["DE"],"window_days":30,"model":{"type":"linear"},
            "eligibility":{"excluded_traffic_types":["incentivised"]}}"#,
    )]);
    let found = three_clicks();
    let reported: Vec<&FoundClick> = found.iter().collect();
    let mut traffic = TrafficTypes::new();
    traffic.declare(aff(1), [tt("seo")]);
    traffic.declare(aff(2), [tt("incentivised"), tt("social")]);
    let a = attributed(attribute(
        &registration(&reported),
        &found,
        &traffic,
        &rules,
    ));
    assert_eq!(credits(&a), [(aff(1), 5_000), (aff(3), 5_000)]);
    assert_eq!(a.basis().excluded.len(), 1);
    assert_eq!(
        a.basis().excluded[0].why,
        Ineligibility::TrafficType {
            account: aff(2),
            traffic_type: tt("incentivised")
        }
    );
    assert_eq!(
        a.basis().jurisdiction.as_ref().map(Jurisdiction::as_str),
        Some("eu")
    );
    // The same affiliate in a country without the exclusion is fine.
    let mut elsewhere = registration(&reported);
    elsewhere.country = cc("BR");
    let a = attributed(attribute(&elsewhere, &found, &traffic, &rules));
    assert_eq!(a.credits().len(), 1, "global default: last click");
    assert_eq!(a.basis().excluded.len(), 0);
}

#[test]
fn when_every_affiliate_is_ineligible_the_registration_is_unattributed() {
    let rules = rules_with(&[(
        "default/eu.json",
        r#"{"version":2,"countries":["DE"],"window_days":30,"model":{"type":"linear"},
            "eligibility":{"excluded_traffic_types":["incentivised"],"exclude_undeclared_traffic":true}}"#,
    )]);
    let mut sub_link = click(1, 3, 1);
    sub_link.sub_affiliate_id = Some(aff(11));
    let undeclared = click(2, 2, 2);
    let mut traffic = TrafficTypes::new();
    traffic.declare(aff(1), [tt("seo")]);
    traffic.declare(aff(11), [tt("incentivised")]);
    let found = [sub_link.clone(), undeclared.clone()];
    let u = unattributed(attribute(
        &registration(&[&sub_link, &undeclared]),
        &found,
        &traffic,
        &rules,
    ));
    assert_eq!(u.reason, UnattributedReason::NoEligibleAffiliate);
    let whys: Vec<_> = u.basis.excluded.iter().map(|e| e.why.clone()).collect();
    assert_eq!(
        whys,
        [
            Ineligibility::TrafficType {
                account: aff(11),
                traffic_type: tt("incentivised")
            },
            Ineligibility::Undeclared { account: aff(2) },
        ]
    );
}

#[test]
fn ties_in_click_time_are_ordered_by_click_id_text() {
    let rules = rules_with(&[]);
    let a = click_at(0x10, REG - DAY_MS, 1);
    let b = click_at(0x20, REG - DAY_MS, 2);
    assert!(a.click_id.to_string() < b.click_id.to_string());
    let d = attributed(decide(&[&b, &a], &[b.clone(), a.clone()], &rules));
    assert_eq!(
        credits(&d),
        [(aff(2), 10_000)],
        "last click = larger id text"
    );
}

#[test]
fn repeated_ids_and_repeated_rows_count_once() {
    let rules = rules_model(r#"{"type":"linear"}"#, 30);
    let c = click(1, 3, 1);
    let mut reg = registration(&[&c, &c]);
    reg.reported_click_ids.push(c.click_id);
    let a = attributed(attribute(
        &reg,
        &[c.clone(), c.clone()],
        &TrafficTypes::new(),
        &rules,
    ));
    assert_eq!(a.touchpoints().len(), 1);
    assert_eq!(a.basis().reported.len(), 1);
}

#[test]
fn the_rules_of_the_players_jurisdiction_and_brand_are_used_and_recorded() {
    let curacao_brand = brand(1);
    let brand_default = format!("{curacao_brand}/default.json");
    let rules = rules_with(&[
        (
            "default/eu.json",
            r#"{"version":4,"countries":["DE","MT"],"window_days":30,"model":{"type":"linear"}}"#,
        ),
        (
            &brand_default,
            r#"{"version":9,"window_days":90,"model":{"type":"first_click"}}"#,
        ),
    ]);
    let c = click(1, 60, 1);
    let mut reg = registration(&[&c]);
    // A German player: EU rules, 30 days → 60 days is out.
    let u = unattributed(attribute(
        &reg,
        std::slice::from_ref(&c),
        &TrafficTypes::new(),
        &rules,
    ));
    assert_eq!(
        u.basis.rules.to_string().split('#').next(),
        Some("default/eu.json@4")
    );
    // A Brazilian player of the same brand: the brand's 90-day default.
    reg.country = cc("BR");
    let a = attributed(attribute(
        &reg,
        std::slice::from_ref(&c),
        &TrafficTypes::new(),
        &rules,
    ));
    assert_eq!(a.rules().file(), brand_default);
    assert_eq!(a.rules().version(), 9);
    assert_eq!(a.basis().window_days, 90);
    assert!(a.basis().jurisdiction.is_none());
}

#[test]
fn kyc_approval_finalises_an_attribution_and_revocation_claws_back() {
    let c = click(1, 3, 1);
    let mut a = attributed(decide(&[&c], std::slice::from_ref(&c), &rules_with(&[])));
    let t = a.apply_kyc(KycEvent::Approved);
    assert_eq!(t.effect, CommissionEffect::Payable);
    assert_eq!(a.status(), AttributionStatus::Final);
    let t = a.apply_kyc(KycEvent::Revoked);
    assert_eq!(t.effect, CommissionEffect::ClawBack);
    assert_eq!(a.status(), AttributionStatus::Rejected);
    assert_eq!(Decision::Attributed(a).status_code(), "rejected");
}

#[test]
fn decisions_serialise_for_storage() {
    let c = click(1, 3, 1);
    let d = decide(&[&c], std::slice::from_ref(&c), &rules_with(&[]));
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(json["outcome"], "attributed");
    assert_eq!(json["model"], "last_click");
    assert_eq!(json["status"], "pending_kyc");
    assert_eq!(json["credits"][0]["credit"], 10_000);
    assert_eq!(json["reported"][0]["check"], "touchpoint");
    assert_eq!(json["rules"]["file"], "default/default.json");
    let u = decide(&[], &[], &rules_with(&[]));
    let json = serde_json::to_value(&u).expect("json");
    assert_eq!(json["outcome"], "unattributed");
    assert_eq!(json["reason"], "no_click_reported");
    assert_eq!(json["fingerprint"]["outcome"], "no_device");
    assert_eq!(u.status_code(), "unattributed");
}

#[test]
fn serialised_reasons_do_not_repeat_a_key_of_the_decision() {
    let rules = rules_with(&[]);
    let mut other = click(1, 3, 1);
    other.brand_id = brand(2);
    let old = click(2, 40, 1);
    for d in [
        decide(&[&other], std::slice::from_ref(&other), &rules),
        decide(&[&old], std::slice::from_ref(&old), &rules),
    ] {
        let text = serde_json::to_string(&d).expect("json");
        for key in ["\"brand_id\"", "\"window_days\"", "\"reason\""] {
            assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
        }
    }
    let text = serde_json::to_string(&decide(&[&other], std::slice::from_ref(&other), &rules))
        .expect("json");
    assert!(
        !text.contains(&brand(2).to_string()),
        "the owner of a foreign click is never named: {text}"
    );
}

fn model_strategy() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(r#"{"type":"first_click"}"#),
        Just(r#"{"type":"last_click"}"#),
        Just(r#"{"type":"linear"}"#),
        Just(r#"{"type":"time_decay","half_life_days":3}"#),
        Just(r#"{"type":"position_based"}"#),
        Just(r#"{"type":"position_based","first_bps":3333,"last_bps":3333}"#),
    ]
}

proptest! {
    #[test]
    fn every_attribution_credits_exactly_10000_bps(
        model in model_strategy(),
        clicks in proptest::collection::vec((0u64..45 * DAY_MS, 0u128..4, any::<bool>()), 1..25),
    ) {
        let rules = rules_model(model, 30);
        let found: Vec<FoundClick> = clicks
            .iter()
            .enumerate()
            .map(|(i, (age, a, reported))| {
                let mut c = click_at(i as u8, REG - age, *a);
                c.is_duplicate = !reported && i % 3 == 0;
                c
            })
            .collect();
        let mut reported: Vec<&FoundClick> = found
            .iter()
            .zip(&clicks)
            .filter(|(_, (_, _, r))| *r)
            .map(|(c, _)| c)
            .collect();
        if reported.is_empty() {
            reported.push(&found[0]);
        }
        match decide(&reported, &found, &rules) {
            Decision::Attributed(a) => {
                prop_assert_eq!(a.touchpoints().iter().map(|t| t.credit.get()).sum::<i64>(), 10_000);
                prop_assert_eq!(a.credits().iter().map(|c| c.credit.get()).sum::<i64>(), 10_000);
                let times: Vec<u64> = a.touchpoints().iter().map(|t| t.clicked_at_ms).collect();
                prop_assert!(times.windows(2).all(|w| w[0] <= w[1]));
            }
            Decision::Unattributed(u) => {
                let outside = matches!(u.reason, UnattributedReason::OutsideWindow { .. });
                prop_assert!(outside, "{}", u.reason);
            }
        }
    }
}
