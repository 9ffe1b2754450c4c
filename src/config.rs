//! Typed, strict configuration (`batchcost.toml`, contract section 3). Unknown keys are
//! errors; secrets are read from the environment variables the file names, never from the
//! file, and held in [`Secret`] so they cannot reach a log line by accident.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::money::Money;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// Path of the price table, relative to the config file's folder.
    pub pricing: PathBuf,
    /// IANA time zone in which budget days and months begin at local midnight.
    pub timezone: String,
    /// Base URL clients reach the gateway at; `results_url` is rewritten to it.
    /// Default: `http://` and the address the listener is bound to.
    #[serde(default)]
    pub public_url: Option<String>,
    pub storage: Storage,
    pub upstream: Upstream,
    #[serde(default)]
    pub projects: Vec<Project>,
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    pub admin: Admin,
    #[serde(default)]
    pub tracker: Tracker,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub server: Server,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// `sqlite://path.db` (relative to the config file) or `sqlite::memory:`.
    pub url: String,
    /// `"normal"`: a commit survives the process being killed (kill -9, OOM, panic);
    /// `"full"`: it also survives power loss, at one disk flush per commit.
    #[serde(default)]
    pub durability: Durability,
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Normal,
    Full,
}

/// `[upstream]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub anthropic: AnthropicUpstream,
}

/// `[upstream.anthropic]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicUpstream {
    pub base_url: String,
    /// Name of the environment variable holding the provider key.
    pub api_key_env: String,
    /// Per-call timeout for JSON calls, seconds. A results download gets this much between
    /// chunks, not in total.
    #[serde(default = "default_upstream_timeout")]
    pub timeout_secs: u64,
    /// Attempts per idempotent call (retrieve, list, results) and for creates the upstream
    /// refused outright (429, 529) or, after another 5xx, its batch list proved absent.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_upstream_timeout() -> u64 {
    120
}

fn default_attempts() -> u32 {
    4
}

/// `[[projects]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Becomes the `project` label: a bounded, configured set.
    pub name: String,
    /// Environment variables whose values are this project's client keys.
    pub api_key_envs: Vec<String>,
}

/// Budget window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

/// `[[budgets]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub name: String,
    /// Omitted: the budget covers every project.
    #[serde(default)]
    pub project: Option<String>,
    pub period: Period,
    #[serde(default)]
    pub limit_usd: Option<f64>,
    #[serde(default)]
    pub limit_input_tokens: Option<u64>,
    #[serde(default)]
    pub limit_output_tokens: Option<u64>,
    /// Fractions of the limit exported for alert rules.
    #[serde(default)]
    pub alert_at: Vec<f64>,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Guards `/api/*` and, when set, `/metrics`.
    pub token_env: String,
}

/// `[tracker]`: how often open batches are polled. Batches take minutes to hours, so the
/// interval starts short (a small batch may end quickly) and grows to minutes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracker {
    #[serde(default = "default_poll_min")]
    pub poll_min_ms: u64,
    #[serde(default = "default_poll_max")]
    pub poll_max_ms: u64,
    /// A submission with no upstream answer after this long is reconciled against the
    /// upstream's batch list (crash or lost response).
    #[serde(default = "default_reconcile_after")]
    pub reconcile_after_secs: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            poll_min_ms: default_poll_min(),
            poll_max_ms: default_poll_max(),
            reconcile_after_secs: default_reconcile_after(),
        }
    }
}

fn default_poll_min() -> u64 {
    5_000
}

fn default_poll_max() -> u64 {
    300_000
}

fn default_reconcile_after() -> u64 {
    180
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted batch body, bytes (the upstream's own limit is 256 MB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// A create with the same body from the same project within this many seconds is
    /// taken as the client's retry and answered with the first batch.
    #[serde(default = "default_dedupe")]
    pub dedupe_window_secs: u64,
    /// Share of `max_tokens` the expected (not worst-case) estimate assumes.
    #[serde(default = "default_fraction")]
    pub expected_output_fraction: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: default_max_body(),
            dedupe_window_secs: default_dedupe(),
            expected_output_fraction: default_fraction(),
        }
    }
}

fn default_max_body() -> u64 {
    256 * 1024 * 1024
}

fn default_dedupe() -> u64 {
    600
}

fn default_fraction() -> f64 {
    0.5
}

/// `[server]`: how long a client may take, and how long a stopping gateway waits. A client
/// that stalls holds a connection and, mid-batch, up to 256 MB of buffer: these bound both.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Time a client has to send a request's headers; an idle keep-alive connection is
    /// closed after the same time.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Longest pause between two pieces of a request body (answered 408).
    #[serde(default = "default_body_idle_timeout")]
    pub body_idle_timeout_secs: u64,
    /// Longest time to receive a whole body (answered 408). 256 MB at 1 MB/s takes 256 s.
    #[serde(default = "default_body_total_timeout")]
    pub body_total_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C: how long requests in progress (submissions above all) get to
    /// finish before the process exits anyway. Set it above `upstream.anthropic.timeout_secs`
    /// so a submission always finishes or rolls back before exit; one cut off stays
    /// `submitting` in the ledger and the next start reconciles it.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            header_read_timeout_secs: default_header_read_timeout(),
            body_idle_timeout_secs: default_body_idle_timeout(),
            body_total_timeout_secs: default_body_total_timeout(),
            shutdown_grace_secs: default_shutdown_grace(),
        }
    }
}

fn default_header_read_timeout() -> u64 {
    30
}

fn default_body_idle_timeout() -> u64 {
    30
}

fn default_body_total_timeout() -> u64 {
    600
}

fn default_shutdown_grace() -> u64 {
    150
}

/// A value that must never be printed: `Debug` shows `[redacted]`, and there is no
/// `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A config problem, naming the file, the key and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

/// A budget after validation, with its limits exact.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub name: String,
    pub project: Option<String>,
    pub period: Period,
    pub limit: Option<Money>,
    pub limit_input_tokens: Option<u64>,
    pub limit_output_tokens: Option<u64>,
    pub alert_at: Vec<f64>,
}

/// Everything the gateway needs at run time, secrets included.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub listen: SocketAddr,
    pub public_url: String,
    pub pricing_path: PathBuf,
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub storage_url: String,
    pub durability: Durability,
    pub upstream_base_url: String,
    pub upstream_key: Secret,
    pub upstream_timeout_secs: u64,
    pub upstream_max_attempts: u32,
    /// (project name, its client keys)
    pub projects: Vec<(String, Vec<Secret>)>,
    pub budgets: Vec<Budget>,
    pub admin_token: Secret,
    pub tracker: Tracker,
    pub limits: Limits,
    pub server: Server,
}

impl Config {
    /// Reads and parses the file; syntax, type and unknown-key errors carry line and column.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError { file, message: e.to_string() })
    }

    /// Validates cross-references and reads secrets from `env`.
    pub fn resolve(
        self,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let err = |message: String| ConfigError { file: file.clone(), message };
        let base = path.parent().unwrap_or(Path::new("."));
        let timezone = self.time_zone().map_err(err)?;
        let secret = |key: &str, var: &str| -> Result<Secret, ConfigError> {
            match env(var) {
                Some(v) if !v.is_empty() => Ok(Secret::new(v)),
                _ => Err(err(format!("{key}: environment variable `{var}` is not set or empty"))),
            }
        };
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut projects = Vec::new();
        for (i, p) in self.projects.iter().enumerate() {
            if !valid_label(&p.name) {
                return Err(err(format!(
                    "projects[{i}].name: expected 1-64 characters of [a-zA-Z0-9_-], got `{}`",
                    p.name
                )));
            }
            if !names.insert(p.name.clone()) {
                return Err(err(format!("projects[{i}].name: duplicate project `{}`", p.name)));
            }
            if p.api_key_envs.is_empty() {
                return Err(err(format!("projects[{i}].api_key_envs: expected at least one")));
            }
            let mut secrets = Vec::new();
            for (j, var) in p.api_key_envs.iter().enumerate() {
                let s = secret(&format!("projects[{i}].api_key_envs[{j}]"), var)?;
                if !keys.insert(s.expose().to_string()) {
                    return Err(err(format!(
                        "projects[{i}].api_key_envs[{j}]: `{var}` holds a key another project uses"
                    )));
                }
                secrets.push(s);
            }
            projects.push((p.name.clone(), secrets));
        }
        let mut budgets = Vec::new();
        let mut budget_names = BTreeSet::new();
        for (i, b) in self.budgets.iter().enumerate() {
            let key = |k: &str| format!("budgets[{i}].{k}");
            if !valid_label(&b.name) || !budget_names.insert(b.name.clone()) {
                return Err(err(format!(
                    "{}: missing, invalid or duplicate `{}`",
                    key("name"),
                    b.name
                )));
            }
            if let Some(p) = &b.project {
                if !names.contains(p) {
                    return Err(err(format!("{}: no project named `{p}`", key("project"))));
                }
            }
            let limit = match b.limit_usd {
                Some(v) if v.is_finite() && v >= 0.0 => Some(
                    Money::from_f64_usd(v)
                        .map_err(|e| err(format!("{}: {e}", key("limit_usd"))))?,
                ),
                Some(v) => {
                    return Err(err(format!("{}: expected >= 0, got {v}", key("limit_usd"))));
                }
                None => None,
            };
            if limit.is_some_and(|l| l.to_i64().is_none()) {
                return Err(err(format!(
                    "{}: above the ledger's $9.2 million cap",
                    key("limit_usd")
                )));
            }
            if limit.is_none() && b.limit_input_tokens.is_none() && b.limit_output_tokens.is_none()
            {
                return Err(err(format!(
                    "{}: expected limit_usd, limit_input_tokens or limit_output_tokens",
                    key("limit_usd")
                )));
            }
            for (j, f) in b.alert_at.iter().enumerate() {
                if !(f.is_finite() && *f > 0.0 && *f <= 1.0) {
                    return Err(err(format!(
                        "{}[{j}]: expected a fraction in (0, 1], got {f}",
                        key("alert_at")
                    )));
                }
            }
            budgets.push(Budget {
                name: b.name.clone(),
                project: b.project.clone(),
                period: b.period,
                limit,
                limit_input_tokens: b.limit_input_tokens,
                limit_output_tokens: b.limit_output_tokens,
                alert_at: b.alert_at.clone(),
            });
        }
        let f = self.limits.expected_output_fraction;
        if !(0.0..=1.0).contains(&f) {
            return Err(err(format!("limits.expected_output_fraction: expected 0 to 1, got {f}")));
        }
        if self.tracker.poll_min_ms == 0 || self.tracker.poll_max_ms < self.tracker.poll_min_ms {
            return Err(err("tracker.poll_max_ms: expected >= poll_min_ms > 0".into()));
        }
        let sv = &self.server;
        let server_times = [
            ("header_read_timeout_secs", sv.header_read_timeout_secs),
            ("body_idle_timeout_secs", sv.body_idle_timeout_secs),
            ("body_total_timeout_secs", sv.body_total_timeout_secs),
            ("shutdown_grace_secs", sv.shutdown_grace_secs),
        ];
        for (key, v) in server_times {
            if v == 0 {
                return Err(err(format!("server.{key}: expected at least 1 second, got 0")));
            }
        }
        let storage_url = resolve_sqlite_path(&self.storage.url, base);
        let up = &self.upstream.anthropic;
        Ok(Settings {
            config_path: path.to_path_buf(),
            listen: self.listen,
            // Empty: filled from the bound address once the listener is up.
            public_url: self
                .public_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            pricing_path: base.join(&self.pricing),
            timezone,
            timezone_name: self.timezone.clone(),
            storage_url,
            durability: self.storage.durability,
            upstream_base_url: up.base_url.trim_end_matches('/').to_string(),
            upstream_key: secret("upstream.anthropic.api_key_env", &up.api_key_env)?,
            upstream_timeout_secs: up.timeout_secs.max(1),
            upstream_max_attempts: up.max_attempts.max(1),
            projects,
            budgets,
            admin_token: secret("admin.token_env", &self.admin.token_env)?,
            tracker: self.tracker.clone(),
            limits: self.limits.clone(),
            server: self.server.clone(),
        })
    }
}

/// What read-only commands (`batchcost report`) need: no secrets, so finance can run
/// them where the provider key and client keys are not set.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub config_path: PathBuf,
    pub pricing_path: PathBuf,
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub storage_url: String,
}

impl Config {
    fn time_zone(&self) -> Result<TimeZone, String> {
        TimeZone::get(&self.timezone).map_err(|e| {
            format!("timezone: expected an IANA time zone name, got `{}` ({e})", self.timezone)
        })
    }

    /// Like [`Config::resolve`] for commands that only read the ledger: skips every
    /// secret environment variable.
    pub fn resolve_for_reports(&self, path: &Path) -> Result<LedgerSettings, ConfigError> {
        let err = |message: String| ConfigError { file: path.display().to_string(), message };
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(LedgerSettings {
            config_path: path.to_path_buf(),
            pricing_path: base.join(&self.pricing),
            timezone: self.time_zone().map_err(err)?,
            timezone_name: self.timezone.clone(),
            storage_url: resolve_sqlite_path(&self.storage.url, base),
        })
    }
}

/// Label values must stay bounded and safe in PromQL and CSV.
fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A relative SQLite path is taken relative to the config file, like `pricing`.
fn resolve_sqlite_path(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(p) if !p.starts_with('/') && !p.starts_with(':') => {
            format!("sqlite://{}", base.join(p).display())
        }
        _ => url.to_string(),
    }
}

/// Loads, validates and resolves secrets from the process environment.
pub fn load_settings(path: &Path) -> Result<Settings, ConfigError> {
    Config::load(path)?.resolve(path, &|k| std::env::var(k).ok())
}
