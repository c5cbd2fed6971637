//! Cross-brand player linking cannot be used against another brand: a
//! brand that registers a player under another brand's `player_ref`, with a
//! backdated `occurred_at`, neither reverses nor takes the other brand's
//! affiliate's CPA — "CPA once per player" is decided by when the platform
//! recorded each registration, not by times a brand reports.

use std::time::Duration;

use clickstitch_aggregator::commission::{EntryKind, Slot};

use crate::commissions::{
    at, brand, click_at, cpa, deal, kyc, pay_in_and_play, post, registration, run, spawn, version,
    Brand, HOUR_MS,
};
use crate::helpers::TestApp;

/// Registers `player` at `b` under `player_ref` at `at_ms`, pays in and
/// plays in `month`, and has KYC approved.
async fn qualify_as(app: &TestApp, b: &Brand, player: &str, player_ref: &str, month: u8) {
    let registered = at(month, 5);
    let c = click_at(app, &b.f, 3, registered - HOUR_MS).await;
    let mut event = registration(player, &c, registered);
    event["player_ref"] = player_ref.into();
    let (s, _, body) = app.post_event(&b.key, event).await;
    assert_eq!(s, 201, "{body}");
    pay_in_and_play(app, b, player, month).await;
    post(
        app,
        b,
        kyc(&format!("{player}-kyc"), player, at(month, 15), "approved"),
    )
    .await;
}

#[tokio::test]
async fn a_backdated_registration_under_another_brands_player_ref_takes_nothing_from_it() {
    let app = spawn().await;
    let (a, b) = (brand(&app).await, brand(&app).await);
    deal(&app, &a.sub(), version(cpa(10_000), 0, 0)).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;

    qualify_as(&app, &a, "alice", "operator-customer-42", 7).await;
    let first = run(&app).await;
    let earned: Vec<_> = first
        .entries
        .iter()
        .filter(|e| matches!(e.slot, Slot::Cpa { .. }) && e.affiliate.to_string() == a.sub())
        .collect();
    assert_eq!(earned.len(), 1, "{:?}", first.entries);
    assert_eq!(earned[0].amount.minor(), 10_000);

    // Brand B learns the reference and reports "the same player" as
    // registered, depositing and verified a month earlier.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    qualify_as(&app, &b, "mallory", "operator-customer-42", 6).await;
    let second = run(&app).await;
    let touching_a: Vec<_> = second
        .entries
        .iter()
        .filter(|e| e.affiliate.to_string() == a.sub() || e.affiliate.to_string() == a.parent())
        .collect();
    assert!(
        touching_a.is_empty(),
        "brand B changed brand A's ledger: {touching_a:?}"
    );
    let paid_b: i64 = second
        .entries
        .iter()
        .filter(|e| e.affiliate.to_string() == b.sub() && e.kind != EntryKind::Payout)
        .filter(|e| matches!(e.slot, Slot::Cpa { .. }))
        .map(|e| e.amount.minor())
        .sum();
    assert_eq!(paid_b, 0, "the CPA was already earned at brand A");
}

#[tokio::test]
async fn a_player_ref_links_players_only_among_brands_of_one_link_group() {
    let app = crate::helpers::spawn_app().await;
    let shared_a = app.seed().await;
    let shared_b = app.seed().await;
    let (s, separate) = app
        .admin_post(
            "brands",
            serde_json::json!({"name": "White Label", "jurisdiction": {"name": "MGA"},
                "player_link_group": "white-label-7"}),
        )
        .await;
    assert_eq!(s, 201, "{separate}");
    assert_eq!(separate["player_link_group"], "white-label-7");
    let (s, body) = app
        .admin_post(
            "brands",
            serde_json::json!({"name": "Bad", "jurisdiction": {"name": "MGA"},
                "player_link_group": "no spaces/allowed"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "player_link_group");

    let separate_id = separate["brand_id"].as_str().expect("id").to_owned();
    let keys = [
        app.brand_key(&shared_a).await,
        app.brand_key(&shared_b).await,
        app.issue_key(&format!("brands/{separate_id}")).await,
    ];
    for (i, key) in keys.iter().enumerate() {
        let event = serde_json::json!({"event_id": format!("reg-{i}"), "type": "registration",
            "occurred_at": crate::helpers::now_ms(), "player_id": format!("p-{i}"),
            "country": "DE", "player_ref": "operator-customer-42"});
        let (s, _, body) = app.post_event(key, event).await;
        assert_eq!(s, 201, "{body}");
    }
    let ids = app.sql(&format!(
        "SELECT toString(brand_id) = '{separate_id}', toString(player_id) FROM players FINAL \
         ORDER BY brand_id FORMAT TSV"
    ));
    let mut shared = std::collections::BTreeSet::new();
    let mut own = std::collections::BTreeSet::new();
    for line in ids.lines() {
        let (is_separate, id) = line.split_once('\t').expect("two columns");
        if is_separate == "1" {
            own.insert(id.to_owned())
        } else {
            shared.insert(id.to_owned())
        };
    }
    assert_eq!(shared.len(), 1, "the two shared-group brands link: {ids}");
    assert_eq!(own.len(), 1);
    assert!(
        shared.is_disjoint(&own),
        "the separate group never links: {ids}"
    );
}
