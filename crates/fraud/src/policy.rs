//! Fraud policy: the weights, limits and windows of every signal and the
//! quarantine threshold ([`FraudPolicy`]), per brand ([`FraudPolicies`]),
//! and the loading of `config/fraud/` ([`FraudPolicies::load_dir`]).
//!
//! Owns the JSON format (see `docs/fraud.md`), its defaults, its validation
//! and the layering of files: built-in defaults ← `default.json` ←
//! `<brand uuid>.json`, each file giving only the fields it changes. The
//! loader is the only IO of the fraud module, and it only reads the policy
//! directory; this file knows nothing of windows, ClickHouse or HTTP.
//!
//! Loading is all-or-nothing: every file is read and validated, and one bad
//! file fails the whole load with an error naming every bad file, so a
//! caller that reloads keeps its previous [`FraudPolicies`] (swap the `Arc`
//! only on success, e.g. with [`super::Scorer::replace_policies`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clickstitch_shared::BrandId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::window::MEMBERS;

/// Name of the policy file every brand falls back to.
pub const DEFAULT_FILE: &str = "default.json";

/// Version of the built-in defaults (and of the shipped
/// `config/fraud/default.json`, which holds the same values).
pub const BUILTIN_VERSION: &str = "2026-12-04.1";

/// Longest IP / subnet velocity window: the click rings hold 16 one-minute
/// buckets.
pub const MAX_VELOCITY_WINDOW_MINUTES: u32 = 16;

/// Longest registration / deposit distinct-count window (30 days).
pub const MAX_DISTINCT_WINDOW_HOURS: u32 = 720;

/// Highest distinct-count limit: counts are exact up to
/// [`MEMBERS`] distinct players per key, and a limit must leave room to see
/// it exceeded (and scaled) inside that.
pub const MAX_DISTINCT_LIMIT: u32 = MEMBERS as u32 - 2;

/// Longest click-flooding window, in days (the affiliate rings hold 30 days
/// of 6-hour buckets).
pub const MAX_FLOODING_WINDOW_DAYS: u32 = 30;

/// Longest `version` string accepted.
const MAX_VERSION_LEN: usize = 64;

/// "More than `limit` events of one key inside `window_minutes`": IP and
/// subnet click velocity. Points scale with the count, see
/// [`super::signals::count_points`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityRule {
    /// Points when the count first exceeds the limit (0 disables).
    pub points: u8,
    /// Most clicks allowed in the window.
    pub limit: u32,
    /// Window length in minutes (1..=16), rounded to whole minutes.
    pub window_minutes: u32,
}

/// "More than `limit` distinct players on one key inside `window_hours`":
/// registrations per IP, registrations and first deposits per device.
/// Points scale with the count, see [`super::signals::count_points`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistinctRule {
    /// Points when the count first exceeds the limit (0 disables).
    pub points: u8,
    /// Most distinct players allowed in the window (1..=6).
    pub limit: u32,
    /// Window length in hours (1..=720).
    pub window_hours: u32,
}

/// A yes/no signal worth a fixed number of points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatRule {
    /// Points when the signal fires (0 disables).
    pub points: u8,
}

/// Clicks from hosting / datacenter networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsnRule {
    /// Points when the click's (or registration's) ASN is listed.
    pub points: u8,
    /// Whether the compiled-in hosting dataset
    /// ([`hosting_dataset`]) counts.
    pub dataset: bool,
    /// Further hosting / datacenter autonomous system numbers. A file that
    /// sets this replaces the whole list of additions.
    pub asns: BTreeSet<u32>,
    /// ASNs never counted, even if the dataset lists them (e.g. a VPN that
    /// carries many of a brand's real players). Replaced like `asns`.
    pub except: BTreeSet<u32>,
}

impl AsnRule {
    /// Whether `asn` counts as a hosting / datacenter network.
    pub fn lists(&self, asn: u32) -> bool {
        asn != 0
            && !self.except.contains(&asn)
            && (self.asns.contains(&asn) || (self.dataset && hosting_dataset().contains(&asn)))
    }
}

/// Registration too soon after the click: click injection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectionRule {
    /// Points when the click-to-registration time is below the minimum or
    /// negative.
    pub points: u8,
    /// Shortest plausible click-to-registration time, in seconds.
    pub min_ctit_secs: u32,
}

/// An affiliate whose registrations mostly arrive long after the click:
/// click flooding (spraying clicks so as to be the last click before
/// organic registrations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodingRule {
    /// Points for a long-CTIT registration of a flagged affiliate.
    pub points: u8,
    /// Window over which the affiliate's registrations are counted (days,
    /// 1..=30, in 6-hour buckets).
    pub window_days: u32,
    /// A registration more than this many hours after its click is "long".
    pub long_ctit_hours: u32,
    /// The affiliate is judged only once it has at least this many
    /// registrations with a click in the window.
    pub min_registrations: u32,
    /// Flagged when the share of long registrations exceeds this percentage.
    pub max_long_share_percent: u8,
}

/// Part of an earlier stage's score added to the next stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarryRule {
    /// Percentage of the earlier score added (0..=100; rounded down).
    pub percent: u8,
}

/// Every weight, limit and window of fraud scoring, for one brand (or the
/// default). `points` are added when a signal fires; the score is the sum,
/// capped at 100. See `docs/fraud.md` for each signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudPolicy {
    /// Version of this policy, recorded with every score (e.g.
    /// `2026-11-21.1`). Every file must carry its own.
    pub version: String,
    /// A score at or above this is quarantined (1..=100).
    pub quarantine_threshold: u8,
    /// Clicks from one IP (IPv6: its /64) on one link.
    pub ip_velocity: VelocityRule,
    /// Clicks from one /24 (IPv6: /48) on one link.
    pub subnet_velocity: VelocityRule,
    /// Distinct players registering from one IP (IPv6: /64).
    pub ip_registrations: DistinctRule,
    /// Distinct players registering from one device fingerprint.
    pub device_registrations: DistinctRule,
    /// Distinct players making a first deposit from one device fingerprint.
    pub device_deposits: DistinctRule,
    /// A click the edge marked as a bot.
    pub bot_user_agent: FlatRule,
    /// A click (or registration) from a hosting / datacenter ASN.
    pub datacenter_asn: AsnRule,
    /// Click-to-registration time too short.
    pub click_injection: InjectionRule,
    /// The affiliate's registrations arrive long after the click.
    pub click_flooding: FloodingRule,
    /// The registration's device fingerprint differs from the click's.
    pub fingerprint_mismatch: FlatRule,
    /// The registration's country differs from the click's.
    pub country_mismatch: FlatRule,
    /// Share of the click's score added to its registration's.
    pub click_carryover: CarryRule,
    /// Share of the registration's score added to the first deposit's.
    pub registration_carryover: CarryRule,
    /// The population sweep: networks whose clicks on a link convert far
    /// below the rest of the link's traffic (or the brand's).
    pub conversion_shortfall: ShortfallRule,
}

/// The population sweep's test (docs/fraud.md, "Conversion shortfall").
/// Clicks of one link are grouped by network — the IPv4 /22 or IPv6 /48 —
/// and all of the link's clicks from hosting networks form one more group,
/// over `lookback_hours`, leaving out the last `settle_minutes` (players
/// have not registered yet). A group is flagged when it has at least
/// `min_clicks`, converted at most `max_ratio_percent` of what the baseline
/// rate predicts, and a binomial tail bound puts the chance of so few
/// conversions at or below 10^-`confidence_nines`. The baseline is the
/// rest of the link's clicks when they number at least
/// `min_baseline_clicks`, else the rest of the brand's; in a baseline each
/// network counts at most `min_clicks` clicks (its conversions scaled
/// alike), so a farm cannot drag the rate it is compared with. The flagged
/// group's clicks that converted are never held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortfallRule {
    /// Points added to each held click (0 disables the sweep).
    pub points: u8,
    /// Smallest group judged.
    pub min_clicks: u32,
    /// Smallest baseline (link or brand clicks outside the group).
    pub min_baseline_clicks: u32,
    /// How far back the sweep looks, in hours.
    pub lookback_hours: u32,
    /// Most recent minutes left out (not yet converted).
    pub settle_minutes: u32,
    /// Highest conversion, in percent of the expected, that can flag.
    pub max_ratio_percent: u32,
    /// Significance: the tail bound must be at most 10^-nines.
    pub confidence_nines: u32,
}

/// Hosting / datacenter ASNs the compiled-in dataset lacks that the
/// built-in policy adds (`datacenter_asn.asns`): big clouds seen in
/// affiliate fraud that `crates/fraud/data/hosting-asns.csv` does not list.
pub const DEFAULT_DATACENTER_ASNS: &[u32] = &[
    31898,  // Oracle Cloud
    37963,  // Alibaba Cloud (CN)
    45090,  // Tencent Cloud (CN)
    47583,  // Hostinger
    54290,  // Hostwinds
    132203, // Tencent Cloud
    199524, // G-Core Labs
    396982, // Google Cloud
];

/// The published hosting / datacenter ASN dataset compiled in
/// (`crates/fraud/data/hosting-asns.csv`: source, version and refresh script
/// in `crates/fraud/data/README.md`).
const HOSTING_ASNS_CSV: &str = include_str!("../data/hosting-asns.csv");

/// The ASNs of the compiled-in hosting dataset, parsed once.
pub fn hosting_dataset() -> &'static BTreeSet<u32> {
    static SET: std::sync::OnceLock<BTreeSet<u32>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        HOSTING_ASNS_CSV
            .lines()
            .skip(1)
            .filter_map(|line| line.split(',').next()?.parse().ok())
            .collect()
    })
}

impl FraudPolicy {
    /// The built-in defaults (see `docs/fraud.md` for the reasoning).
    pub fn builtin() -> Self {
        Self {
            version: BUILTIN_VERSION.to_owned(),
            quarantine_threshold: 60,
            ip_velocity: VelocityRule {
                points: 40,
                limit: 20,
                window_minutes: 10,
            },
            subnet_velocity: VelocityRule {
                points: 40,
                limit: 60,
                window_minutes: 10,
            },
            ip_registrations: DistinctRule {
                points: 30,
                limit: 3,
                window_hours: 24,
            },
            device_registrations: DistinctRule {
                points: 50,
                limit: 2,
                window_hours: 30 * 24,
            },
            device_deposits: DistinctRule {
                points: 50,
                limit: 2,
                window_hours: 30 * 24,
            },
            bot_user_agent: FlatRule { points: 100 },
            datacenter_asn: AsnRule {
                points: 50,
                dataset: true,
                asns: DEFAULT_DATACENTER_ASNS.iter().copied().collect(),
                except: BTreeSet::new(),
            },
            click_injection: InjectionRule {
                points: 70,
                min_ctit_secs: 10,
            },
            click_flooding: FloodingRule {
                points: 60,
                window_days: 30,
                long_ctit_hours: 24,
                min_registrations: 20,
                max_long_share_percent: 60,
            },
            fingerprint_mismatch: FlatRule { points: 20 },
            country_mismatch: FlatRule { points: 15 },
            click_carryover: CarryRule { percent: 50 },
            registration_carryover: CarryRule { percent: 50 },
            conversion_shortfall: ShortfallRule {
                points: 70,
                min_clicks: 30,
                min_baseline_clicks: 200,
                lookback_hours: 72,
                settle_minutes: 60,
                max_ratio_percent: 25,
                confidence_nines: 6,
            },
        }
    }

    /// Checks every value's range; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                problems.push(what);
            }
        };
        check(
            !self.version.trim().is_empty() && self.version.len() <= MAX_VERSION_LEN,
            format!("version must be 1 to {MAX_VERSION_LEN} characters"),
        );
        check(
            (1..=100).contains(&self.quarantine_threshold),
            "quarantine_threshold must be 1..=100".into(),
        );
        let points = [
            ("ip_velocity", self.ip_velocity.points),
            ("subnet_velocity", self.subnet_velocity.points),
            ("ip_registrations", self.ip_registrations.points),
            ("device_registrations", self.device_registrations.points),
            ("device_deposits", self.device_deposits.points),
            ("bot_user_agent", self.bot_user_agent.points),
            ("datacenter_asn", self.datacenter_asn.points),
            ("click_injection", self.click_injection.points),
            ("click_flooding", self.click_flooding.points),
            ("fingerprint_mismatch", self.fingerprint_mismatch.points),
            ("country_mismatch", self.country_mismatch.points),
            ("conversion_shortfall", self.conversion_shortfall.points),
        ];
        for (name, p) in points {
            check(p <= 100, format!("{name}.points must be 0..=100"));
        }
        for (name, rule) in [
            ("ip_velocity", &self.ip_velocity),
            ("subnet_velocity", &self.subnet_velocity),
        ] {
            check(
                (1..=1_000_000).contains(&rule.limit),
                format!("{name}.limit must be 1..=1000000"),
            );
            check(
                (1..=MAX_VELOCITY_WINDOW_MINUTES).contains(&rule.window_minutes),
                format!("{name}.window_minutes must be 1..={MAX_VELOCITY_WINDOW_MINUTES}"),
            );
        }
        for (name, rule) in [
            ("ip_registrations", &self.ip_registrations),
            ("device_registrations", &self.device_registrations),
            ("device_deposits", &self.device_deposits),
        ] {
            check(
                (1..=MAX_DISTINCT_LIMIT).contains(&rule.limit),
                format!(
                    "{name}.limit must be 1..={MAX_DISTINCT_LIMIT} (distinct players are counted up to {MEMBERS})"
                ),
            );
            check(
                (1..=MAX_DISTINCT_WINDOW_HOURS).contains(&rule.window_hours),
                format!("{name}.window_hours must be 1..={MAX_DISTINCT_WINDOW_HOURS}"),
            );
        }
        check(
            self.click_injection.min_ctit_secs <= 3600,
            "click_injection.min_ctit_secs must be 0..=3600".into(),
        );
        let f = &self.click_flooding;
        check(
            (1..=MAX_FLOODING_WINDOW_DAYS).contains(&f.window_days),
            format!("click_flooding.window_days must be 1..={MAX_FLOODING_WINDOW_DAYS}"),
        );
        check(
            (1..=24 * 30).contains(&f.long_ctit_hours),
            "click_flooding.long_ctit_hours must be 1..=720".into(),
        );
        check(
            f.min_registrations >= 1,
            "click_flooding.min_registrations must be at least 1".into(),
        );
        check(
            f.max_long_share_percent <= 100,
            "click_flooding.max_long_share_percent must be 0..=100".into(),
        );
        check(
            self.click_carryover.percent <= 100,
            "click_carryover.percent must be 0..=100".into(),
        );
        check(
            self.registration_carryover.percent <= 100,
            "registration_carryover.percent must be 0..=100".into(),
        );
        let s = &self.conversion_shortfall;
        check(
            (1..=1_000_000).contains(&s.min_clicks),
            "conversion_shortfall.min_clicks must be 1..=1000000".into(),
        );
        check(
            (1..=10_000_000).contains(&s.min_baseline_clicks),
            "conversion_shortfall.min_baseline_clicks must be 1..=10000000".into(),
        );
        check(
            (1..=720).contains(&s.lookback_hours),
            "conversion_shortfall.lookback_hours must be 1..=720".into(),
        );
        check(
            s.settle_minutes <= 1440
                && u64::from(s.settle_minutes) < u64::from(s.lookback_hours) * 60,
            "conversion_shortfall.settle_minutes must be 0..=1440 and shorter than the lookback"
                .into(),
        );
        check(
            s.max_ratio_percent <= 100,
            "conversion_shortfall.max_ratio_percent must be 0..=100".into(),
        );
        check(
            (1..=30).contains(&s.confidence_nines),
            "conversion_shortfall.confidence_nines must be 1..=30".into(),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Why a policy file (or a policy built in code) was refused. Always names
/// the file (or `default` / the brand id).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or not the policy format (unknown field, wrong type, …).
    #[error("{path}: not a valid fraud policy: {source}")]
    Json {
        /// The path.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: serde_json::Error,
    },
    /// The right shape with a value out of range, or a missing `version`.
    #[error("{path}: {reason}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file or directory that has no place in the layout.
    #[error("{path}: {reason}")]
    Layout {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `default.json` is missing.
    #[error("{path}: missing; the default fraud policy file is required")]
    MissingDefault {
        /// Where it was expected.
        path: PathBuf,
    },
}

/// A load of the policy directory that failed; nothing was loaded.
#[derive(Debug, thiserror::Error)]
#[error("fraud policies in {} not loaded ({} problem(s)): {}", .dir.display(), .errors.len(), join(.errors))]
pub struct PolicyLoadError {
    /// The directory.
    pub dir: PathBuf,
    /// Every problem found, each naming its file.
    pub errors: Vec<PolicyError>,
}

fn join(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The default policy plus per-brand overrides, validated. Cheap to share
/// (`Arc` inside); replace the whole value to reload.
#[derive(Debug, Clone)]
pub struct FraudPolicies {
    default: Arc<FraudPolicy>,
    brands: HashMap<BrandId, Arc<FraudPolicy>>,
}

impl FraudPolicies {
    /// The built-in defaults for every brand; needs no files.
    pub fn builtin() -> Self {
        Self {
            default: Arc::new(FraudPolicy::builtin()),
            brands: HashMap::new(),
        }
    }

    /// A set built in code; every policy is validated.
    pub fn new(
        default: FraudPolicy,
        brands: impl IntoIterator<Item = (BrandId, FraudPolicy)>,
    ) -> Result<Self, PolicyError> {
        let invalid = |name: String, reason| PolicyError::Invalid {
            path: PathBuf::from(name),
            reason,
        };
        default
            .validate()
            .map_err(|r| invalid("default".into(), r))?;
        let mut map = HashMap::new();
        for (brand, policy) in brands {
            policy
                .validate()
                .map_err(|r| invalid(brand.to_string(), r))?;
            map.insert(brand, Arc::new(policy));
        }
        Ok(Self {
            default: Arc::new(default),
            brands: map,
        })
    }

    /// The policy of a brand: its own file, else the default.
    pub fn for_brand(&self, brand: BrandId) -> Arc<FraudPolicy> {
        self.get(brand).clone()
    }

    /// Like [`FraudPolicies::for_brand`] without the reference count.
    pub fn get(&self, brand: BrandId) -> &Arc<FraudPolicy> {
        self.brands.get(&brand).unwrap_or(&self.default)
    }

    /// The default policy.
    pub fn default_policy(&self) -> &Arc<FraudPolicy> {
        &self.default
    }

    /// Brands with their own policy.
    pub fn brands(&self) -> impl Iterator<Item = (BrandId, &Arc<FraudPolicy>)> {
        self.brands.iter().map(|(b, p)| (*b, p))
    }

    /// The default and every brand policy.
    pub fn all(&self) -> impl Iterator<Item = &Arc<FraudPolicy>> {
        std::iter::once(&self.default).chain(self.brands.values())
    }

    /// Loads `dir`: `default.json` (required) and `<brand uuid>.json` (lower
    /// case, canonical form) for each brand with its own policy. Each file
    /// needs a `"version"` and gives only the fields it changes: the default
    /// file is layered on the built-in defaults, a brand file on the default
    /// file. Entries starting with `.` and files not ending in `.json` are
    /// ignored; a directory or a `.json` not named like that is an error.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyLoadError> {
        let fail = |errors| PolicyLoadError {
            dir: dir.to_owned(),
            errors,
        };
        let (default_file, brand_files, mut errors) = read_dir(dir).map_err(fail)?;
        let default_value = match default_file {
            None => {
                errors.push(PolicyError::MissingDefault {
                    path: dir.join(DEFAULT_FILE),
                });
                None
            }
            Some((path, bytes)) => {
                let mut base = builtin_value();
                match layer(&path, &bytes, &mut base) {
                    Ok(()) => Some((path, base)),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
        };
        let default =
            default_value
                .as_ref()
                .and_then(|(path, value)| match finish(path, value.clone()) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                });
        let mut brands = HashMap::new();
        for (brand, path, bytes) in brand_files {
            // A brand file layers on the default file; if that is broken,
            // still check the brand file against the built-in defaults.
            let mut base = default_value
                .as_ref()
                .map_or_else(builtin_value, |(_, v)| v.clone());
            let policy = layer(&path, &bytes, &mut base).and_then(|()| finish(&path, base));
            match policy {
                Ok(p) => {
                    brands.insert(brand, Arc::new(p));
                }
                Err(e) => errors.push(e),
            }
        }
        match default {
            Some(default) if errors.is_empty() => Ok(Self {
                default: Arc::new(default),
                brands,
            }),
            _ => Err(fail(errors)),
        }
    }
}

type BrandFile = (BrandId, PathBuf, Vec<u8>);

/// The default file, the brand files and the problems met, or the error of
/// an unreadable directory.
type DirContents = (Option<(PathBuf, Vec<u8>)>, Vec<BrandFile>, Vec<PolicyError>);

fn read_dir(dir: &Path) -> Result<DirContents, Vec<PolicyError>> {
    let read_err = |path: &Path, source| PolicyError::Read {
        path: path.to_owned(),
        source,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| vec![read_err(dir, e)])?;
    let mut errors = Vec::new();
    let mut default = None;
    let mut brands = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push(read_err(dir, e));
                continue;
            }
        };
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            errors.push(PolicyError::Layout {
                path,
                reason: "no directories in the fraud policy directory".into(),
            });
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let brand = if name == DEFAULT_FILE {
            None
        } else {
            match BrandId::parse(stem) {
                Ok(b) if b.to_string() == stem => Some(b),
                _ => {
                    errors.push(PolicyError::Layout {
                        path,
                        reason: "a policy file is default.json or <brand id>.json, the id in lower-case hyphenated UUID form".into(),
                    });
                    continue;
                }
            }
        };
        match (std::fs::read(&path), brand) {
            (Ok(bytes), None) => default = Some((path, bytes)),
            (Ok(bytes), Some(b)) => brands.push((b, path, bytes)),
            (Err(e), _) => errors.push(read_err(&path, e)),
        }
    }
    brands.sort_by(|a, b| a.1.cmp(&b.1));
    Ok((default, brands, errors))
}

fn builtin_value() -> Value {
    // Serialising plain structs of integers, strings and sets cannot fail.
    serde_json::to_value(FraudPolicy::builtin()).unwrap_or(Value::Null)
}

/// Parses one file and layers it on `base`.
fn layer(path: &Path, bytes: &[u8], base: &mut Value) -> Result<(), PolicyError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|source| PolicyError::Json {
        path: path.to_owned(),
        source,
    })?;
    let has_version = value
        .get("version")
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()));
    if !value.is_object() || !has_version {
        return Err(PolicyError::Invalid {
            path: path.to_owned(),
            reason: "a policy file is a JSON object with its own \"version\" string".into(),
        });
    }
    merge(base, value);
    Ok(())
}

/// Objects merge key by key (recursively); anything else replaces.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn finish(path: &Path, value: Value) -> Result<FraudPolicy, PolicyError> {
    let policy: FraudPolicy =
        serde_json::from_value(value).map_err(|source| PolicyError::Json {
            path: path.to_owned(),
            source,
        })?;
    policy.validate().map_err(|reason| PolicyError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand(n: u128) -> BrandId {
        BrandId::from(uuid::Uuid::from_u128(n))
    }

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).expect("write");
    }

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/fraud")
    }

    #[test]
    fn the_builtin_policy_is_valid() {
        assert_eq!(FraudPolicy::builtin().validate(), Ok(()));
    }

    #[test]
    fn the_shipped_default_json_parses_and_equals_the_builtin_policy() {
        let text = std::fs::read_to_string(shipped_dir().join(DEFAULT_FILE)).expect("read");
        let parsed: FraudPolicy = serde_json::from_str(&text).expect("complete policy");
        assert_eq!(parsed, FraudPolicy::builtin());
        let loaded = FraudPolicies::load_dir(&shipped_dir()).expect("load");
        assert_eq!(**loaded.default_policy(), FraudPolicy::builtin());
    }

    #[test]
    fn a_brand_file_overrides_only_the_fields_it_names_on_top_of_the_default_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(
            tmp.path(),
            "default.json",
            r#"{"version":"d1","quarantine_threshold":70}"#,
        );
        let b = brand(5);
        write(
            tmp.path(),
            &format!("{b}.json"),
            r#"{"version":"b1","ip_velocity":{"limit":50},"datacenter_asn":{"asns":[64500]}}"#,
        );
        write(tmp.path(), "README.md", "notes");
        write(tmp.path(), ".default.json.swp", "junk");
        let p = FraudPolicies::load_dir(tmp.path()).expect("load");
        let d = p.default_policy();
        assert_eq!((d.version.as_str(), d.quarantine_threshold), ("d1", 70));
        let bp = p.for_brand(b);
        assert_eq!(bp.version, "b1");
        assert_eq!(bp.quarantine_threshold, 70, "from default.json");
        assert_eq!(bp.ip_velocity.limit, 50);
        assert_eq!(bp.ip_velocity.points, 40, "built-in");
        assert_eq!(
            bp.datacenter_asn.asns,
            BTreeSet::from([64500]),
            "lists replace"
        );
        assert_eq!(p.for_brand(brand(6)).version, "d1");
    }

    #[test]
    fn one_bad_file_fails_the_whole_load_and_every_bad_file_is_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "default.json", r#"{"version":"d1"}"#);
        let (b1, b2) = (brand(1), brand(2));
        write(
            tmp.path(),
            &format!("{b1}.json"),
            r#"{"version":"x","ip_velocity":{"limit":0}}"#,
        );
        write(
            tmp.path(),
            &format!("{b2}.json"),
            r#"{"version":"x","colour":1}"#,
        );
        write(tmp.path(), "Brand.json", r#"{"version":"x"}"#);
        let err = FraudPolicies::load_dir(tmp.path()).expect_err("bad files");
        assert_eq!(err.errors.len(), 3, "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("{b1}.json")), "{text}");
        assert!(text.contains("ip_velocity.limit"), "{text}");
        assert!(text.contains(&format!("{b2}.json")), "{text}");
        assert!(text.contains("colour"), "{text}");
        assert!(text.contains("Brand.json"), "{text}");
    }

    #[test]
    fn a_file_without_its_own_version_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "default.json", r#"{"quarantine_threshold":50}"#);
        let err = FraudPolicies::load_dir(tmp.path()).expect_err("no version");
        assert!(err.to_string().contains("version"), "{err}");
    }

    #[test]
    fn a_missing_default_file_is_an_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let err = FraudPolicies::load_dir(tmp.path()).expect_err("missing");
        assert!(matches!(
            err.errors[..],
            [PolicyError::MissingDefault { .. }]
        ));
    }

    #[test]
    fn windows_longer_than_the_rings_and_limits_above_the_member_capacity_are_refused() {
        let mut p = FraudPolicy::builtin();
        p.ip_velocity.window_minutes = 17;
        p.device_registrations.limit = 7;
        p.click_flooding.window_days = 31;
        let err = p.validate().expect_err("invalid");
        assert!(err.contains("ip_velocity.window_minutes"), "{err}");
        assert!(err.contains("device_registrations.limit"), "{err}");
        assert!(err.contains("click_flooding.window_days"), "{err}");
    }

    #[test]
    fn policies_built_in_code_are_validated_and_name_the_brand() {
        let mut bad = FraudPolicy::builtin();
        bad.quarantine_threshold = 0;
        let err =
            FraudPolicies::new(FraudPolicy::builtin(), [(brand(3), bad)]).expect_err("invalid");
        assert!(err.to_string().contains(&brand(3).to_string()), "{err}");
    }
}
