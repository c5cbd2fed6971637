//! Loading the rules directory, holding the active [`RuleSet`] and swapping
//! it without downtime.
//!
//! Owns the directory layout (`<dir>/<default|brand uuid>/<name>.json`), the
//! all-or-nothing reload, the "content changed ⇒ version must go up" check
//! and the polling reloader. This is the only part of attribution that does
//! IO, and the only IO is reading the rules directory; it knows nothing of
//! clicks, ClickHouse or HTTP.
//!
//! A reload reads every file, validates all of them, and swaps the whole
//! set in one step, or changes nothing: readers never see a mix of old and
//! new files, and one bad file keeps the previous rules active (the error
//! names every bad file and why).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::rules::{hex, parse_scope, RuleSet, RulesError, RulesRef};

/// A reload that changed nothing because at least one file is wrong. The
/// previously loaded rules stay active.
#[derive(Debug, thiserror::Error)]
#[error("attribution rules in {} not reloaded ({} problem(s)); the previous rules stay active: {}", .dir.display(), .errors.len(), join(.errors))]
pub struct ReloadError {
    /// The rules directory.
    pub dir: PathBuf,
    /// Every problem found, each naming its file.
    pub errors: Vec<RulesError>,
}

fn join(errors: &[RulesError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Number of rules files now active.
    pub files: usize,
    /// Files that are new.
    pub added: Vec<RulesRef>,
    /// Files whose content changed (the new reference).
    pub updated: Vec<RulesRef>,
    /// Files that are gone (the last reference).
    pub removed: Vec<RulesRef>,
}

impl ReloadReport {
    /// Whether anything changed.
    pub fn is_change(&self) -> bool {
        !(self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |refs: &[RulesRef]| {
            refs.iter()
                .map(|r| format!("{}@{}", r.file(), r.version()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "{} rules file(s) active; added [{}]; updated [{}]; removed [{}]",
            self.files,
            list(&self.added),
            list(&self.updated),
            list(&self.removed)
        )
    }
}

/// One file read from the rules directory.
#[derive(Debug, Clone)]
struct Source {
    /// `<scope>/<name>.json`.
    file: String,
    bytes: Vec<u8>,
}

/// Reads every rules file under `dir`.
///
/// Layout: `dir/<scope>/<name>.json`, scope being `default` or a brand id.
/// Entries whose name starts with `.` (editor and atomic-write temporaries)
/// and files not ending in `.json` are ignored, as are plain files directly
/// in `dir` (a README); a `.json` directly in `dir`, a directory not named
/// like a scope, or a directory inside a scope is an error, since it would
/// otherwise be silently ignored.
fn read_tree(dir: &Path) -> Result<Vec<Source>, Vec<RulesError>> {
    let read_err = |path: &Path, source| RulesError::Read {
        path: path.to_owned(),
        source,
    };
    let mut errors = Vec::new();
    let mut sources = Vec::new();
    let top = std::fs::read_dir(dir).map_err(|e| vec![read_err(dir, e)])?;
    for entry in top {
        let entry = entry.map_err(|e| vec![read_err(dir, e)])?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                errors.push(read_err(&path, e));
                continue;
            }
        };
        // Follow symlinks (e.g. Kubernetes ConfigMap mounts) for the kind.
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if !is_dir {
            if name.ends_with(".json") {
                errors.push(RulesError::Layout {
                    path,
                    reason: "rules files belong in default/ or a brand directory".into(),
                });
            }
            continue;
        }
        if let Err(reason) = parse_scope(&name) {
            errors.push(RulesError::Layout { path, reason });
            continue;
        }
        let inner = match std::fs::read_dir(&path) {
            Ok(i) => i,
            Err(e) => {
                errors.push(read_err(&path, e));
                continue;
            }
        };
        for entry in inner {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    errors.push(read_err(&path, e));
                    continue;
                }
            };
            let file_path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            if file_path.is_dir() {
                errors.push(RulesError::Layout {
                    path: file_path,
                    reason: "no directories inside a scope directory".into(),
                });
                continue;
            }
            if !file_name.ends_with(".json") {
                continue;
            }
            match std::fs::read(&file_path) {
                Ok(bytes) => sources.push(Source {
                    file: format!("{name}/{file_name}"),
                    bytes,
                }),
                Err(e) => errors.push(read_err(&file_path, e)),
            }
        }
    }
    if errors.is_empty() {
        sources.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(sources)
    } else {
        Err(errors)
    }
}

fn build(dir: &Path, sources: &[Source]) -> Result<RuleSet, Vec<RulesError>> {
    RuleSet::from_files(
        dir,
        sources
            .iter()
            .map(|s| (s.file.as_str(), s.bytes.as_slice())),
    )
}

/// Reads and validates a rules directory (no store involved).
pub fn load_dir(dir: &Path) -> Result<RuleSet, ReloadError> {
    let wrap = |errors| ReloadError {
        dir: dir.to_owned(),
        errors,
    };
    let sources = read_tree(dir).map_err(wrap)?;
    build(dir, &sources).map_err(wrap)
}

/// The highest version and its digest ever loaded per file.
type History = BTreeMap<String, (u32, [u8; 32])>;

/// The active rules, shared by every request. Readers take an
/// `Arc<RuleSet>` snapshot ([`RulesStore::current`]) and use it for one
/// whole decision; a reload swaps the `Arc` under a short write lock, so a
/// decision never sees two rule versions.
#[derive(Debug)]
pub struct RulesStore {
    current: RwLock<Arc<RuleSet>>,
    /// Held for a whole reload, so two reloads cannot interleave.
    history: Mutex<History>,
}

impl RulesStore {
    /// A store serving `initial`.
    pub fn new(initial: RuleSet) -> Self {
        let mut history = History::new();
        record(&mut history, &initial);
        Self {
            current: RwLock::new(Arc::new(initial)),
            history: Mutex::new(history),
        }
    }

    /// Loads `dir` for the first time (startup: a bad directory is an error,
    /// there is nothing older to keep).
    pub fn load(dir: &Path) -> Result<Self, ReloadError> {
        load_dir(dir).map(Self::new)
    }

    /// The active rules.
    pub fn current(&self) -> Arc<RuleSet> {
        // The lock only guards an Arc swap, which cannot leave it half done.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads `dir` and, if every file is valid, makes it the active set.
    ///
    /// Besides file validation, a file whose bytes differ from the last
    /// loaded version of the same file must carry a higher `"version"`
    /// (remembered for the life of the process, even if the file was removed
    /// in between), so a `(file, version)` pair names one content. On any
    /// error nothing changes.
    pub fn reload_from_dir(&self, dir: &Path) -> Result<ReloadReport, ReloadError> {
        let sources = read_tree(dir).map_err(|errors| ReloadError {
            dir: dir.to_owned(),
            errors,
        })?;
        self.install(dir, &sources)
    }

    fn install(&self, dir: &Path, sources: &[Source]) -> Result<ReloadReport, ReloadError> {
        let wrap = |errors| ReloadError {
            dir: dir.to_owned(),
            errors,
        };
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = build(dir, sources).map_err(wrap)?;
        let errors: Vec<RulesError> = next
            .files()
            .filter_map(|rules| {
                let src = rules.source();
                match history.get(src.file()) {
                    Some((loaded, digest))
                        if *digest != src.sha256() && src.version() <= *loaded =>
                    {
                        Some(RulesError::VersionNotRaised {
                            path: dir.join(src.file()),
                            version: src.version(),
                            loaded: *loaded,
                        })
                    }
                    _ => None,
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(wrap(errors));
        }
        let previous = self.current();
        let report = diff(&previous, &next);
        record(&mut history, &next);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
        Ok(report)
    }
}

fn record(history: &mut History, set: &RuleSet) {
    for rules in set.files() {
        let src = rules.source();
        let entry = history
            .entry(src.file().to_owned())
            .or_insert((src.version(), src.sha256()));
        if src.version() >= entry.0 {
            *entry = (src.version(), src.sha256());
        }
    }
}

fn diff(old: &RuleSet, new: &RuleSet) -> ReloadReport {
    let index = |s: &RuleSet| -> BTreeMap<String, RulesRef> {
        s.files()
            .map(|r| (r.source().file().to_owned(), r.source().clone()))
            .collect()
    };
    let (old, new) = (index(old), index(new));
    ReloadReport {
        files: new.len(),
        added: new
            .iter()
            .filter(|(k, _)| !old.contains_key(*k))
            .map(|(_, v)| v.clone())
            .collect(),
        updated: new
            .iter()
            .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
            .map(|(_, v)| v.clone())
            .collect(),
        removed: old
            .iter()
            .filter(|(k, _)| !new.contains_key(*k))
            .map(|(_, v)| v.clone())
            .collect(),
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files are the same as the active set's (or as the last failed
    /// attempt's, already reported).
    Unchanged,
    /// A new set is active.
    Reloaded(ReloadReport),
}

/// Polls a rules directory and reloads a [`RulesStore`] when the files'
/// contents change (compared by SHA-256 of every file, so a change is seen
/// even within one modification-time tick). A failed attempt is reported
/// once; the same bad content is not reported again until something
/// changes, and [`RulesReloader::last_error`] keeps it for health checks.
#[derive(Debug)]
pub struct RulesReloader {
    store: Arc<RulesStore>,
    dir: PathBuf,
    last_attempt: Option<[u8; 32]>,
    last_error: Option<String>,
}

impl RulesReloader {
    /// A reloader of `store` from `dir`.
    pub fn new(store: Arc<RulesStore>, dir: impl Into<PathBuf>) -> Self {
        Self {
            store,
            dir: dir.into(),
            last_attempt: None,
            last_error: None,
        }
    }

    /// Checks the directory once and reloads if it changed.
    pub fn run_once(&mut self) -> Result<ReloadOutcome, ReloadError> {
        let read = read_tree(&self.dir);
        let digest = match &read {
            Ok(sources) => tree_digest(sources),
            // An unreadable tree: fingerprint the error text, so that the
            // same failure is reported once.
            Err(errors) => Sha256::digest(join(errors).as_bytes()).into(),
        };
        if self.last_attempt == Some(digest) || self.store.current().digest() == digest {
            self.last_attempt = Some(digest);
            return Ok(ReloadOutcome::Unchanged);
        }
        self.last_attempt = Some(digest);
        let result = match read {
            Ok(sources) => self.store.install(&self.dir, &sources),
            Err(errors) => Err(ReloadError {
                dir: self.dir.clone(),
                errors,
            }),
        };
        match result {
            Ok(report) => {
                self.last_error = None;
                Ok(ReloadOutcome::Reloaded(report))
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The message of the last failed reload, until a reload succeeds.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Calls [`RulesReloader::run_once`] every `every` (on a blocking
    /// thread: it reads files) until `shutdown` completes, logging reloads
    /// at info and failures at error level.
    pub async fn run_until_stopped(
        mut self,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            let joined = tokio::task::spawn_blocking(move || {
                let result = self.run_once();
                (self, result)
            })
            .await;
            let (me, result) = match joined {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "attribution rules reloader stopped");
                    return;
                }
            };
            self = me;
            match result {
                Ok(ReloadOutcome::Unchanged) => {}
                Ok(ReloadOutcome::Reloaded(report)) => {
                    tracing::info!(%report, "attribution rules reloaded");
                }
                Err(e) => tracing::error!(error = %e, "attribution rules reload failed"),
            }
        }
    }
}

/// Same construction as [`RuleSet::digest`].
fn tree_digest(sources: &[Source]) -> [u8; 32] {
    let mut digest = Sha256::new();
    for s in sources {
        digest.update(s.file.as_bytes());
        digest.update([0]);
        digest.update(Sha256::digest(&s.bytes));
    }
    digest.finalize().into()
}

/// The digest of the directory's files in hex (for a health endpoint that
/// wants to show which content is active).
pub fn digest_hex(set: &RuleSet) -> String {
    hex(&set.digest())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstitch_shared::{BrandId, CountryCode};

    const GLOBAL: &str = r#"{"version": 1, "window_days": 30, "model": {"type": "last_click"}}"#;

    fn brand(n: u128) -> BrandId {
        BrandId::from(uuid::Uuid::from_u128(n))
    }

    fn cc(c: &str) -> CountryCode {
        CountryCode::parse(c).expect("country")
    }

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn eu(version: u32, window: u32) -> String {
        format!(
            r#"{{"version":{version},"countries":["DE","FR"],"window_days":{window},"model":{{"type":"linear"}}}}"#
        )
    }

    fn setup() -> (tempfile::TempDir, Arc<RulesStore>, RulesReloader) {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "default/default.json", GLOBAL);
        write(tmp.path(), "default/eu.json", &eu(1, 30));
        write(tmp.path(), "README.md", "rules");
        write(tmp.path(), "default/.eu.json.swp", "junk");
        write(tmp.path(), "default/notes.txt", "junk");
        let store = Arc::new(RulesStore::load(tmp.path()).expect("load"));
        let reloader = RulesReloader::new(store.clone(), tmp.path());
        (tmp, store, reloader)
    }

    fn eu_version(store: &RulesStore) -> u32 {
        store
            .current()
            .lookup(brand(1), cc("DE"))
            .source()
            .version()
    }

    #[test]
    fn a_directory_loads_and_ignores_hidden_and_non_json_files() {
        let (_tmp, store, _) = setup();
        assert_eq!(store.current().files().count(), 2);
        assert_eq!(eu_version(&store), 1);
    }

    #[test]
    fn an_unchanged_directory_is_not_reloaded() {
        let (_tmp, _store, mut reloader) = setup();
        assert_eq!(reloader.run_once().expect("poll"), ReloadOutcome::Unchanged);
        assert_eq!(reloader.run_once().expect("poll"), ReloadOutcome::Unchanged);
    }

    #[test]
    fn changing_a_file_makes_run_once_pick_up_the_new_version() {
        let (tmp, store, mut reloader) = setup();
        let before = store.current();
        write(tmp.path(), "default/eu.json", &eu(2, 45));
        let ReloadOutcome::Reloaded(report) = reloader.run_once().expect("reload") else {
            panic!("expected a reload");
        };
        assert_eq!(report.updated.len(), 1);
        assert_eq!(report.updated[0].file(), "default/eu.json");
        assert_eq!(report.updated[0].version(), 2);
        assert!(report.to_string().contains("updated [default/eu.json@2]"));
        assert_eq!(eu_version(&store), 2);
        assert_eq!(
            store.current().lookup(brand(1), cc("DE")).window().days(),
            45
        );
        // A snapshot taken before keeps serving the old rules to its holder.
        assert_eq!(before.lookup(brand(1), cc("DE")).source().version(), 1);
        assert_eq!(reloader.run_once().expect("poll"), ReloadOutcome::Unchanged);
    }

    #[test]
    fn adding_and_removing_files_is_reported() {
        let (tmp, store, mut reloader) = setup();
        let b = brand(9);
        write(
            tmp.path(),
            &format!("{b}/default.json"),
            r#"{"version":1,"window_days":90,"model":{"type":"first_click"}}"#,
        );
        std::fs::remove_file(tmp.path().join("default/eu.json")).expect("rm");
        let ReloadOutcome::Reloaded(report) = reloader.run_once().expect("reload") else {
            panic!("expected a reload");
        };
        assert_eq!(report.added[0].file(), format!("{b}/default.json"));
        assert_eq!(report.removed[0].file(), "default/eu.json");
        assert_eq!(store.current().lookup(b, cc("DE")).window().days(), 90);
    }

    #[test]
    fn an_invalid_file_keeps_the_old_rules_and_reports_the_error() {
        let (tmp, store, mut reloader) = setup();
        write(
            tmp.path(),
            "default/eu.json",
            r#"{"version":2,"window_days":30"#,
        );
        let err = reloader.run_once().expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("default/eu.json"), "{text}");
        assert!(text.contains("previous rules stay active"), "{text}");
        assert_eq!(eu_version(&store), 1, "old rules still active");
        assert!(reloader.last_error().is_some());
        // Reported once, not on every poll, while the content stays the same.
        assert_eq!(reloader.run_once().expect("poll"), ReloadOutcome::Unchanged);
        // Fixing the file loads it and clears the error.
        write(tmp.path(), "default/eu.json", &eu(2, 30));
        assert!(matches!(
            reloader.run_once().expect("reload"),
            ReloadOutcome::Reloaded(_)
        ));
        assert_eq!(eu_version(&store), 2);
        assert!(reloader.last_error().is_none());
    }

    #[test]
    fn one_bad_file_blocks_the_good_changes_too() {
        let (tmp, store, mut reloader) = setup();
        write(tmp.path(), "default/eu.json", &eu(2, 30));
        write(tmp.path(), "default/uk.json", r#"{"version":1}"#);
        assert!(reloader.run_once().is_err());
        assert_eq!(eu_version(&store), 1, "all or nothing");
    }

    #[test]
    fn a_changed_file_must_raise_its_version() {
        let (tmp, store, mut reloader) = setup();
        write(tmp.path(), "default/eu.json", &eu(1, 60));
        let err = reloader.run_once().expect_err("same version");
        assert!(matches!(
            err.errors[..],
            [RulesError::VersionNotRaised {
                version: 1,
                loaded: 1,
                ..
            }]
        ));
        assert_eq!(
            store.current().lookup(brand(1), cc("DE")).window().days(),
            30
        );
        // Raising the version loads the change; going back below the
        // highest version loaded is refused.
        write(tmp.path(), "default/eu.json", &eu(3, 60));
        assert!(reloader.run_once().is_ok());
        write(tmp.path(), "default/eu.json", &eu(2, 30));
        assert!(reloader.run_once().is_err());
    }

    #[test]
    fn a_misplaced_file_or_directory_is_an_error_not_ignored() {
        let (tmp, store, _) = setup();
        write(tmp.path(), "eu.json", &eu(1, 30));
        write(tmp.path(), "brands/eu.json", &eu(1, 30));
        let err = store.reload_from_dir(tmp.path()).expect_err("layout");
        assert_eq!(err.errors.len(), 2, "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error_reported_once() {
        let (tmp, store, _) = setup();
        let mut reloader = RulesReloader::new(store.clone(), tmp.path().join("absent"));
        assert!(reloader.run_once().is_err());
        assert_eq!(reloader.run_once().expect("poll"), ReloadOutcome::Unchanged);
        assert_eq!(eu_version(&store), 1);
    }

    #[tokio::test]
    async fn the_background_reloader_stops_on_shutdown() {
        let (tmp, store, reloader) = setup();
        write(tmp.path(), "default/eu.json", &eu(2, 30));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            reloader.run_until_stopped(Duration::from_millis(10), async {
                let _ = rx.await;
            }),
        );
        for _ in 0..200 {
            if eu_version(&store) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(eu_version(&store), 2);
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
    }

    #[test]
    fn the_example_rules_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/attribution");
        let rules = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let any_brand = brand(99);
        let eu = rules.lookup(any_brand, cc("DE"));
        assert_eq!(eu.window().days(), 30);
        assert_eq!(
            eu.jurisdiction()
                .map(crate::attribution::Jurisdiction::as_str),
            Some("eu")
        );
        let incentivised =
            crate::attribution::TrafficType::parse("incentivised").expect("traffic type");
        assert!(eu
            .eligibility()
            .excluded_traffic_types()
            .contains(&incentivised));
        let curacao = rules.lookup(any_brand, cc("BR"));
        assert_eq!(curacao.window().days(), 90);
        assert_eq!(
            curacao
                .jurisdiction()
                .map(crate::attribution::Jurisdiction::as_str),
            Some("curacao")
        );
        let global = rules.lookup(any_brand, cc("US"));
        assert!(global.jurisdiction().is_none());
    }
}
