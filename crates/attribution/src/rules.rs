//! Attribution rules: the validated content of one rules file ([`Rules`]),
//! the set of all files ([`RuleSet`]) and the lookup of the rules that apply
//! to a player of a brand in a country.
//!
//! Owns the JSON format (see `docs/attribution.md`), its validation ("parse,
//! don't validate": a [`Rules`] that exists is valid) and the precedence of
//! files. Does not touch the file system: [`super::loader`] reads the
//! directory and hands the bytes in; this module is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use clickstitch_shared::{BrandId, CountryCode};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::credit::{HalfLife, Model, PositionSplit, DAY_MS};

/// Name of the global scope directory and of the per-scope default file
/// (`default.json`).
pub const DEFAULT: &str = "default";

/// Longest attribution window accepted, in days.
pub const MAX_WINDOW_DAYS: u16 = 365;

/// Largest `fingerprint_matching.max_extra_touchpoints` accepted.
pub const MAX_EXTRA_TOUCHPOINTS: u16 = 100;

/// Default `fingerprint_matching.max_extra_touchpoints`.
pub const DEFAULT_MAX_EXTRA_TOUCHPOINTS: u16 = 10;

/// Longest `description` accepted, in characters.
const MAX_DESCRIPTION: usize = 500;

/// Why one rules file was refused. Always names the file.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or not the rules format (unknown field, wrong type, …).
    #[error("{path}: not a valid rules file: {source}")]
    Json {
        /// The path.
        path: PathBuf,
        /// The parser's message, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// JSON of the right shape with a value out of range.
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
    /// `default/default.json` is missing: every lookup needs a last resort.
    #[error("{path}: missing; the global default rules file is required")]
    MissingGlobalDefault {
        /// Where it was expected.
        path: PathBuf,
    },
    /// Two jurisdiction files of one scope list the same country.
    #[error("{path}: country {country} is also listed by {other}")]
    CountryListedTwice {
        /// The second file.
        path: PathBuf,
        /// The country.
        country: CountryCode,
        /// The first file.
        other: String,
    },
    /// The content of a file changed but its version did not go up.
    #[error(
        "{path}: content changed but version {version} is not above the loaded version {loaded}; raise \"version\""
    )]
    VersionNotRaised {
        /// The path.
        path: PathBuf,
        /// The version in the new content.
        version: u32,
        /// The highest version loaded so far for this file.
        loaded: u32,
    },
}

/// A jurisdiction name: the stem of a jurisdiction rules file, 1 to 32
/// characters of `a-z`, `0-9`, `_`, `-` (so `eu`, `curacao`, `uk-gc`).
/// `default` is reserved for the default file.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jurisdiction(String);

impl Jurisdiction {
    /// Parses a name; upper case is refused (file names are the key, and
    /// `EU.json` next to `eu.json` would be ambiguous).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == DEFAULT {
            return Err("\"default\" is reserved for the default file".into());
        }
        if label_ok(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "jurisdiction name must be 1 to 32 characters of a-z, 0-9, '_' and '-', got {:?}",
                text.chars().take(40).collect::<String>()
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jurisdiction({})", self.0)
    }
}

impl Serialize for Jurisdiction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An affiliate traffic type such as `seo`, `ppc`, `social`, `email`,
/// `incentivised`: 1 to 32 characters of `a-z`, `0-9`, `_`, `-`. The set is
/// open (the catalogue owns the list); the spelling must match the
/// catalogue's exactly.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrafficType(String);

impl TrafficType {
    /// Parses a traffic type; leading/trailing spaces are trimmed and upper
    /// case is lowered (`" SEO "` → `seo`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        if label_ok(&t) {
            Ok(Self(t))
        } else {
            Err(format!(
                "traffic type must be 1 to 32 characters of a-z, 0-9, '_' and '-', got {:?}",
                text.chars().take(40).collect::<String>()
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrafficType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrafficType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrafficType({})", self.0)
    }
}

impl Serialize for TrafficType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

fn label_ok(text: &str) -> bool {
    (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The attribution window: a click counts if it happened at most this many
/// whole days before the registration, boundary included (a click exactly
/// `days × 86 400 000` ms before counts; one ms earlier does not).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(u16);

impl Window {
    /// A window of `days` days (1..=365).
    pub fn from_days(days: u64) -> Result<Self, String> {
        match u16::try_from(days) {
            Ok(d) if (1..=MAX_WINDOW_DAYS).contains(&d) => Ok(Self(d)),
            _ => Err(format!(
                "window_days must be between 1 and {MAX_WINDOW_DAYS}, got {days}"
            )),
        }
    }

    /// Days.
    pub fn days(&self) -> u16 {
        self.0
    }

    /// Length in milliseconds.
    pub fn as_ms(&self) -> u64 {
        u64::from(self.0) * DAY_MS
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Window({}d)", self.0)
    }
}

/// Which affiliates may receive credit under these rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eligibility {
    excluded: BTreeSet<TrafficType>,
    exclude_undeclared: bool,
}

impl Eligibility {
    /// Traffic types whose affiliates get no credit.
    pub fn excluded_traffic_types(&self) -> &BTreeSet<TrafficType> {
        &self.excluded
    }

    /// Whether an affiliate whose traffic types the catalogue does not know
    /// gets no credit (fail closed). Default `false`.
    pub fn exclude_undeclared(&self) -> bool {
        self.exclude_undeclared
    }
}

/// Whether and how far the player's other clicks are found through the
/// device fingerprint of the reported clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintPolicy {
    enabled: bool,
    max_extra: u16,
}

impl FingerprintPolicy {
    /// Whether fingerprint-matched clicks are added as touchpoints.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The most fingerprint-matched clicks accepted. The device fingerprint
    /// is derived from request headers, so a common browser build shares it
    /// with strangers; when more candidates than this match, none of them is
    /// used (the evidence is ambiguous) and the outcome says so.
    pub fn max_extra_touchpoints(&self) -> u16 {
        self.max_extra
    }
}

impl Default for FingerprintPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_extra: DEFAULT_MAX_EXTRA_TOUCHPOINTS,
        }
    }
}

/// Which directory a rules file is in: the global `default/` or one brand's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `config/attribution/default/`.
    Global,
    /// `config/attribution/<brand uuid>/`.
    Brand(BrandId),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str(DEFAULT),
            Self::Brand(b) => b.fmt(f),
        }
    }
}

/// Which file: scope directory and jurisdiction (None: `default.json`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    /// The directory.
    pub scope: Scope,
    /// The file stem; None for `default.json`.
    pub jurisdiction: Option<Jurisdiction>,
}

impl RuleKey {
    /// The path relative to the rules directory, e.g. `default/eu.json`.
    pub fn file(&self) -> String {
        let stem = self.jurisdiction.as_ref().map_or(DEFAULT, |j| j.as_str());
        format!("{}/{stem}.json", self.scope)
    }

    /// Parses a relative path `<scope>/<stem>.json` (forward slashes).
    pub fn from_file(file: &str) -> Result<Self, String> {
        let (dir, name) = file
            .split_once('/')
            .ok_or_else(|| "expected <default|brand uuid>/<name>.json".to_owned())?;
        let scope = parse_scope(dir)?;
        let stem = name
            .strip_suffix(".json")
            .ok_or_else(|| "rules files end in .json".to_owned())?;
        let jurisdiction = if stem == DEFAULT {
            None
        } else {
            Some(Jurisdiction::parse(stem)?)
        };
        Ok(Self {
            scope,
            jurisdiction,
        })
    }
}

/// Parses a scope directory name: `default` or a brand id in canonical
/// lower-case hyphenated form.
pub fn parse_scope(dir: &str) -> Result<Scope, String> {
    if dir == DEFAULT {
        return Ok(Scope::Global);
    }
    match BrandId::parse(dir) {
        Ok(b) if b.to_string() == dir => Ok(Scope::Brand(b)),
        _ => Err(format!(
            "directory must be \"default\" or a brand id in lower-case hyphenated UUID form, got {dir:?}"
        )),
    }
}

/// Which rules an attribution used: the file (relative to the rules
/// directory), its `"version"` and the SHA-256 of its bytes. Recorded with
/// every attribution and unattributed event.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RulesRef {
    file: String,
    version: u32,
    #[serde(serialize_with = "hex_digest")]
    sha256: [u8; 32],
}

fn hex_digest<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(d))
}

/// Lower-case hex of `bytes` (rules digests).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl RulesRef {
    /// E.g. `default/eu.json`.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The file's `"version"`.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// SHA-256 of the file's bytes, 64 lower-case hex characters.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// The SHA-256 of the file's content.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
}

/// `default/eu.json@3#<sha256 hex>`: the stable text form to store in an
/// attribution row's `rules_version`.
impl fmt::Display for RulesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.file, self.version, hex(&self.sha256))
    }
}

impl fmt::Debug for RulesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RulesRef({}@{} {})",
            self.file,
            self.version,
            &hex(&self.sha256)[..12]
        )
    }
}

/// The validated content of one rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    key: RuleKey,
    source: RulesRef,
    description: String,
    countries: BTreeSet<CountryCode>,
    window: Window,
    model: Model,
    eligibility: Eligibility,
    fingerprint: FingerprintPolicy,
}

impl Rules {
    /// Parses and validates one file's bytes; `file` is its path relative to
    /// the rules directory (`default/eu.json`), which decides its scope and
    /// jurisdiction. `path` is only used in error messages.
    pub fn parse(file: &str, bytes: &[u8], path: &Path) -> Result<Self, RulesError> {
        let invalid = |reason: String| RulesError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let key = RuleKey::from_file(file).map_err(|reason| RulesError::Layout {
            path: path.to_path_buf(),
            reason,
        })?;
        let raw: RawRules = serde_json::from_slice(bytes).map_err(|source| RulesError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let version = u32::try_from(raw.version)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                invalid(format!(
                    "version must be between 1 and {}, got {}",
                    u32::MAX,
                    raw.version
                ))
            })?;
        let description = raw.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(invalid(format!(
                "description must be at most {MAX_DESCRIPTION} characters"
            )));
        }
        let mut countries = BTreeSet::new();
        for c in raw.countries.unwrap_or_default() {
            if !countries.insert(c) {
                return Err(invalid(format!("country {c} is listed twice")));
            }
        }
        match (&key.jurisdiction, countries.is_empty()) {
            (None, false) => {
                return Err(invalid(
                    "a default.json applies to every country not listed elsewhere: remove \"countries\""
                        .into(),
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "a jurisdiction file must list its \"countries\" (ISO 3166-1 alpha-2)".into(),
                ))
            }
            _ => {}
        }
        let window = Window::from_days(raw.window_days).map_err(invalid)?;
        let model = match raw.model {
            RawModel::FirstClick {} => Model::FirstClick,
            RawModel::LastClick {} => Model::LastClick,
            RawModel::Linear {} => Model::Linear,
            RawModel::TimeDecay { half_life_days } => Model::TimeDecay {
                half_life: HalfLife::from_days(half_life_days)
                    .map_err(|e| invalid(e.to_string()))?,
            },
            RawModel::PositionBased {
                first_bps,
                last_bps,
            } => Model::PositionBased {
                split: PositionSplit::new(first_bps.unwrap_or(4_000), last_bps.unwrap_or(4_000))
                    .map_err(|e| invalid(e.to_string()))?,
            },
        };
        let raw_elig = raw.eligibility.unwrap_or_default();
        let mut excluded = BTreeSet::new();
        for t in raw_elig.excluded_traffic_types.unwrap_or_default() {
            let t = TrafficType::parse(&t).map_err(&invalid)?;
            if !excluded.insert(t.clone()) {
                return Err(invalid(format!("traffic type {t} is listed twice")));
            }
        }
        let eligibility = Eligibility {
            excluded,
            exclude_undeclared: raw_elig.exclude_undeclared_traffic.unwrap_or(false),
        };
        let raw_fp = raw.fingerprint_matching.unwrap_or_default();
        let max_extra = raw_fp
            .max_extra_touchpoints
            .unwrap_or(u64::from(DEFAULT_MAX_EXTRA_TOUCHPOINTS));
        let max_extra = u16::try_from(max_extra)
            .ok()
            .filter(|m| *m <= MAX_EXTRA_TOUCHPOINTS)
            .ok_or_else(|| {
                invalid(format!(
                    "fingerprint_matching.max_extra_touchpoints must be at most {MAX_EXTRA_TOUCHPOINTS}, got {max_extra}"
                ))
            })?;
        let fingerprint = FingerprintPolicy {
            enabled: raw_fp.enabled.unwrap_or(true),
            max_extra,
        };
        let source = RulesRef {
            file: key.file(),
            version,
            sha256: Sha256::digest(bytes).into(),
        };
        Ok(Self {
            key,
            source,
            description,
            countries,
            window,
            model,
            eligibility,
            fingerprint,
        })
    }

    /// Which file these rules came from.
    pub fn key(&self) -> &RuleKey {
        &self.key
    }

    /// File, version and digest: what every attribution records.
    pub fn source(&self) -> &RulesRef {
        &self.source
    }

    /// The jurisdiction (None for a `default.json`).
    pub fn jurisdiction(&self) -> Option<&Jurisdiction> {
        self.key.jurisdiction.as_ref()
    }

    /// Free text for operators.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Player countries a jurisdiction file covers (empty for a default).
    pub fn countries(&self) -> &BTreeSet<CountryCode> {
        &self.countries
    }

    /// The attribution window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The credit model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// Affiliate eligibility.
    pub fn eligibility(&self) -> &Eligibility {
        &self.eligibility
    }

    /// Fingerprint matching.
    pub fn fingerprint(&self) -> FingerprintPolicy {
        self.fingerprint
    }
}

/// All loaded rules files, indexed for lookup. Always contains the global
/// default (`default/default.json`), so [`RuleSet::lookup`] cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    files: BTreeMap<RuleKey, Rules>,
    by_country: BTreeMap<(Scope, CountryCode), RuleKey>,
    global_default: Rules,
    digest: [u8; 32],
}

impl RuleSet {
    /// Builds a set from `(relative path, bytes)` pairs, e.g.
    /// `("default/default.json", b"{…}")`. Every file is checked and every
    /// problem reported (not just the first). `root` prefixes paths in
    /// error messages.
    pub fn from_files<'a>(
        root: &std::path::Path,
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, Vec<RulesError>> {
        let mut errors = Vec::new();
        let mut parsed: BTreeMap<RuleKey, Rules> = BTreeMap::new();
        let mut digest = Sha256::new();
        let mut sorted: Vec<(&str, &[u8])> = files.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (file, bytes) in sorted {
            let file_digest = Sha256::digest(bytes);
            digest.update(file.as_bytes());
            digest.update([0]);
            digest.update(file_digest);
            match Rules::parse(file, bytes, &root.join(file)) {
                Ok(rules) => {
                    parsed.insert(rules.key.clone(), rules);
                }
                Err(e) => errors.push(e),
            }
        }
        let mut by_country: BTreeMap<(Scope, CountryCode), RuleKey> = BTreeMap::new();
        for rules in parsed.values() {
            for c in &rules.countries {
                if let Some(other) = by_country.insert((rules.key.scope, *c), rules.key.clone()) {
                    errors.push(RulesError::CountryListedTwice {
                        path: root.join(rules.key.file()),
                        country: *c,
                        other: other.file(),
                    });
                }
            }
        }
        let global_key = RuleKey {
            scope: Scope::Global,
            jurisdiction: None,
        };
        let global_default = parsed.get(&global_key).cloned();
        match global_default {
            Some(global_default) if errors.is_empty() => Ok(Self {
                files: parsed,
                by_country,
                global_default,
                digest: digest.finalize().into(),
            }),
            None => {
                errors.push(RulesError::MissingGlobalDefault {
                    path: root.join(global_key.file()),
                });
                Err(errors)
            }
            Some(_) => Err(errors),
        }
    }

    /// The rules for a player of `brand` registering from `country`. First
    /// match wins, whole file (no field-level inheritance):
    ///
    /// 1. `<brand>/<jurisdiction>.json` listing `country`;
    /// 2. `default/<jurisdiction>.json` listing `country`;
    /// 3. `<brand>/default.json`;
    /// 4. `default/default.json` (always present).
    ///
    /// The player's jurisdiction comes before the brand's catch-all, so a
    /// brand-wide file cannot silently lift a jurisdiction's window or
    /// exclusions: overriding those for one brand takes a brand file of that
    /// jurisdiction.
    pub fn lookup(&self, brand: BrandId, country: CountryCode) -> &Rules {
        let brand_scope = Scope::Brand(brand);
        [brand_scope, Scope::Global]
            .iter()
            .find_map(|s| self.by_country.get(&(*s, country)))
            .and_then(|k| self.files.get(k))
            .or_else(|| {
                self.files.get(&RuleKey {
                    scope: brand_scope,
                    jurisdiction: None,
                })
            })
            .unwrap_or(&self.global_default)
    }

    /// Every file, by key.
    pub fn files(&self) -> impl Iterator<Item = &Rules> {
        self.files.values()
    }

    /// SHA-256 over the sorted `(path, SHA-256 of bytes)` pairs of the
    /// files this set was built from: equal digests mean equal sources.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    version: u64,
    description: Option<String>,
    countries: Option<Vec<CountryCode>>,
    window_days: u64,
    model: RawModel,
    eligibility: Option<RawEligibility>,
    fingerprint_matching: Option<RawFingerprint>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawModel {
    // Empty struct variants rather than unit variants: serde ignores extra
    // fields next to the tag of a unit variant, and a stray
    // `half_life_days` on `linear` must be an error, not a silent no-op.
    FirstClick {},
    LastClick {},
    Linear {},
    TimeDecay {
        half_life_days: u64,
    },
    PositionBased {
        first_bps: Option<i64>,
        last_bps: Option<i64>,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEligibility {
    excluded_traffic_types: Option<Vec<String>>,
    exclude_undeclared_traffic: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFingerprint {
    enabled: Option<bool>,
    max_extra_touchpoints: Option<u64>,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::Path;

    pub(crate) const GLOBAL: &str =
        r#"{"version": 1, "window_days": 30, "model": {"type": "last_click"}}"#;

    pub(crate) fn brand(n: u128) -> BrandId {
        BrandId::from(uuid::Uuid::from_u128(n))
    }

    pub(crate) fn cc(c: &str) -> CountryCode {
        CountryCode::parse(c).expect("country")
    }

    fn set(files: &[(&str, &str)]) -> Result<RuleSet, Vec<RulesError>> {
        RuleSet::from_files(
            Path::new("/rules"),
            files.iter().map(|(f, b)| (*f, b.as_bytes())),
        )
    }

    fn one(json: &str) -> Result<Rules, RulesError> {
        Rules::parse(
            "default/eu.json",
            json.as_bytes(),
            Path::new("/rules/default/eu.json"),
        )
    }

    #[test]
    fn a_full_rules_file_parses_into_validated_rules() {
        let rules = one(
            r#"{
                "version": 3,
                "description": "EU",
                "countries": ["de", "FR"],
                "window_days": 30,
                "model": {"type": "position_based", "first_bps": 4000, "last_bps": 4000},
                "eligibility": {"excluded_traffic_types": ["Incentivised"], "exclude_undeclared_traffic": true},
                "fingerprint_matching": {"enabled": true, "max_extra_touchpoints": 5}
            }"#,
        )
        .expect("valid");
        assert_eq!(rules.source().version(), 3);
        assert_eq!(rules.source().file(), "default/eu.json");
        assert_eq!(rules.jurisdiction().map(Jurisdiction::as_str), Some("eu"));
        assert_eq!(rules.window().days(), 30);
        assert_eq!(rules.model().label(), "position_based(4000/2000/4000)");
        assert!(rules.countries().contains(&cc("DE")));
        assert_eq!(
            rules
                .eligibility()
                .excluded_traffic_types()
                .iter()
                .map(TrafficType::as_str)
                .collect::<Vec<_>>(),
            ["incentivised"]
        );
        assert!(rules.eligibility().exclude_undeclared());
        assert_eq!(rules.fingerprint().max_extra_touchpoints(), 5);
        assert_eq!(rules.source().sha256_hex().len(), 64);
    }

    #[test]
    fn every_model_type_has_a_json_form() {
        for (json, label) in [
            (r#"{"type":"first_click"}"#, "first_click"),
            (r#"{"type":"last_click"}"#, "last_click"),
            (r#"{"type":"linear"}"#, "linear"),
            (
                r#"{"type":"time_decay","half_life_days":7}"#,
                "time_decay(half_life_days=7)",
            ),
            (
                r#"{"type":"position_based"}"#,
                "position_based(4000/2000/4000)",
            ),
        ] {
            let file =
                format!(r#"{{"version":1,"countries":["DE"],"window_days":30,"model":{json}}}"#);
            assert_eq!(one(&file).expect(label).model().label(), label);
        }
    }

    #[test]
    fn bad_rules_files_are_refused_with_the_path_and_the_reason() {
        for (json, needle) in [
            ("{", "not a valid rules file"),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"last_click"},"windw_days":3}"#,
                "unknown field `windw_days`",
            ),
            (
                r#"{"version":0,"countries":["DE"],"window_days":30,"model":{"type":"last_click"}}"#,
                "version must be",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":0,"model":{"type":"last_click"}}"#,
                "window_days must be between 1 and 365",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":400,"model":{"type":"last_click"}}"#,
                "window_days must be between 1 and 365",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"time_decay","half_life_days":0}}"#,
                "half_life_days",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"position_based","first_bps":6000,"last_bps":5000}}"#,
                "first_bps and last_bps",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"linear","half_life_days":3}}"#,
                "unknown field",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"u_shaped"}}"#,
                "unknown variant",
            ),
            (
                r#"{"version":1,"countries":["Germany"],"window_days":30,"model":{"type":"linear"}}"#,
                "country",
            ),
            (
                r#"{"version":1,"countries":["DE","de"],"window_days":30,"model":{"type":"linear"}}"#,
                "listed twice",
            ),
            (
                r#"{"version":1,"window_days":30,"model":{"type":"linear"}}"#,
                "must list its \"countries\"",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"linear"},"eligibility":{"excluded_traffic_types":["pay per click"]}}"#,
                "traffic type",
            ),
            (
                r#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"linear"},"fingerprint_matching":{"max_extra_touchpoints":1000}}"#,
                "max_extra_touchpoints",
            ),
        ] {
            let err = one(json).expect_err(json).to_string();
            assert!(err.starts_with("/rules/default/eu.json: "), "{err}");
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn a_default_file_must_not_list_countries() {
        let err = Rules::parse(
            "default/default.json",
            br#"{"version":1,"countries":["DE"],"window_days":30,"model":{"type":"linear"}}"#,
            Path::new("/rules/default/default.json"),
        )
        .expect_err("countries in a default");
        assert!(err.to_string().contains("remove \"countries\""), "{err}");
    }

    #[test]
    fn file_names_decide_scope_and_jurisdiction() {
        let b = brand(7);
        let key = RuleKey::from_file(&format!("{b}/curacao.json")).expect("key");
        assert_eq!(key.scope, Scope::Brand(b));
        assert_eq!(
            key.jurisdiction.as_ref().map(Jurisdiction::as_str),
            Some("curacao")
        );
        assert_eq!(key.file(), format!("{b}/curacao.json"));
        for bad in [
            "default/EU.json",
            "default/eu.yaml",
            "brands/eu.json",
            "0000000000000000000000000000000A/eu.json",
            "eu.json",
        ] {
            assert!(RuleKey::from_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_global_default_is_required() {
        let errs = set(&[]).expect_err("empty");
        assert!(matches!(
            errs[..],
            [RulesError::MissingGlobalDefault { .. }]
        ));
        assert!(set(&[("default/default.json", GLOBAL)]).is_ok());
    }

    #[test]
    fn a_country_may_belong_to_one_jurisdiction_per_scope() {
        let errs = set(&[
            ("default/default.json", GLOBAL),
            (
                "default/eu.json",
                r#"{"version":1,"countries":["DE","MT"],"window_days":30,"model":{"type":"linear"}}"#,
            ),
            (
                "default/mga.json",
                r#"{"version":1,"countries":["MT"],"window_days":30,"model":{"type":"linear"}}"#,
            ),
        ])
        .expect_err("MT twice");
        let text = errs[0].to_string();
        assert!(
            text.contains("country MT is also listed by default/eu.json"),
            "{text}"
        );
    }

    #[test]
    fn every_bad_file_is_reported_at_once() {
        let errs = set(&[("default/default.json", "nope"), ("default/eu.json", "{}")])
            .expect_err("two bad files");
        let paths: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            paths[0].starts_with("/rules/default/default.json"),
            "{paths:?}"
        );
        assert!(paths[1].starts_with("/rules/default/eu.json"), "{paths:?}");
    }

    #[test]
    fn lookup_prefers_the_jurisdiction_then_the_brand_default_then_the_global_default() {
        let b = brand(1);
        let other = brand(2);
        let brand_eu = format!("{b}/eu.json");
        let brand_default = format!("{b}/default.json");
        let rules = set(&[
            ("default/default.json", GLOBAL),
            (
                "default/eu.json",
                r#"{"version":2,"countries":["DE","FR"],"window_days":30,"model":{"type":"linear"}}"#,
            ),
            (
                &brand_eu,
                r#"{"version":3,"countries":["DE"],"window_days":14,"model":{"type":"linear"}}"#,
            ),
            (
                &brand_default,
                r#"{"version":4,"window_days":90,"model":{"type":"linear"}}"#,
            ),
        ])
        .expect("valid");
        let file = |brand, country| rules.lookup(brand, cc(country)).source().file().to_owned();
        assert_eq!(file(b, "DE"), brand_eu, "1. brand + jurisdiction");
        assert_eq!(file(b, "FR"), "default/eu.json", "2. global + jurisdiction");
        assert_eq!(file(b, "BR"), brand_default, "3. brand default");
        assert_eq!(
            file(other, "BR"),
            "default/default.json",
            "4. global default"
        );
        assert_eq!(file(other, "DE"), "default/eu.json");
    }

    #[test]
    fn the_rules_reference_names_file_version_and_digest() {
        let rules = set(&[("default/default.json", GLOBAL)]).expect("valid");
        let r = rules.lookup(brand(1), cc("DE")).source().to_string();
        let (head, digest) = r.split_once('#').expect("#");
        assert_eq!(head, "default/default.json@1");
        assert_eq!(digest, hex(&Sha256::digest(GLOBAL.as_bytes())));
    }
}
