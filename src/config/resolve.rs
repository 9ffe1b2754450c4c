//! Validation and resolution: cross-references, exact limits, secrets from the
//! environment. Every error names the file, the key and what was expected.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

use super::*;
use crate::money::Money;

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
    /// Only batches of this upstream count against it.
    pub provider: Option<String>,
    /// Only these models' requests count against it (canonical ids or aliases, as
    /// written; matched against the price table's canonical id and aliases).
    pub models: Option<Vec<String>>,
    pub policy: BudgetPolicy,
}

/// How a budget behaves beyond its limits: the defaults are the original behaviour
/// (weeks from Monday, worst-case holds, no approvals).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BudgetPolicy {
    pub week_starts: WeekStart,
    pub hold: HoldPolicy,
    /// Holds above this wait for an admin's approval.
    pub approval_above: Option<Money>,
}

/// Tokens with less reach than the admin token.
#[derive(Debug, Clone, Default)]
pub struct ScopedTokens {
    /// `GET /metrics` only.
    pub metrics: Option<Secret>,
    /// The read-only `/api/*` routes (and `/metrics`, which is read-only too).
    pub read: Option<Secret>,
}

/// A resolved `[[notify]]` target.
#[derive(Debug, Clone)]
pub struct NotifyTarget {
    pub url: Secret,
    pub format: NotifyFormat,
    pub secret: Option<Secret>,
}

/// Approvals and notifications.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub notify: Vec<NotifyTarget>,
    /// How long an approval admits its batch.
    pub approval_ttl_secs: u64,
    /// How often each replica looks for crossed thresholds and due deliveries.
    pub notify_poll_ms: u64,
}

impl Default for Workflow {
    fn default() -> Self {
        Workflow { notify: Vec::new(), approval_ttl_secs: 24 * 3600, notify_poll_ms: 1000 }
    }
}

/// One `[upstream.NAME]`, resolved.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The table name: `provider` label, ledger provider, price-table provider, `/NAME`.
    pub name: String,
    /// `anthropic`, `openai` or `gemini`.
    pub kind: String,
    pub base_url: String,
    pub key: Secret,
    pub timeout_secs: u64,
    pub max_attempts: u32,
}

/// The wire formats an upstream may speak.
pub const UPSTREAM_KINDS: [&str; 3] = ["anthropic", "openai", "gemini"];

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
    /// Every configured upstream, in name order.
    pub upstreams: Vec<UpstreamSettings>,
    /// (project name, its client keys)
    pub projects: Vec<(String, Vec<Secret>)>,
    pub budgets: Vec<Budget>,
    pub admin_token: Secret,
    pub scoped_tokens: ScopedTokens,
    pub workflow: Workflow,
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
        // Every missing variable is collected and reported at once, so a new deployment
        // finds out what to export in one run rather than one run per variable.
        let missing = std::cell::RefCell::new(Vec::new());
        let secret = |key: &str, var: &str| -> Option<Secret> {
            match env(var) {
                Some(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    missing
                        .borrow_mut()
                        .push(format!("{key}: environment variable `{var}` is not set or empty"));
                    None
                }
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
            let optional = p.optional_api_key_envs.iter().map(|v| (v, true));
            for (j, (var, opt)) in
                p.api_key_envs.iter().map(|v| (v, false)).chain(optional).enumerate()
            {
                let slot = if opt {
                    format!("projects[{i}].optional_api_key_envs[{}]", j - p.api_key_envs.len())
                } else {
                    format!("projects[{i}].api_key_envs[{j}]")
                };
                let s = if opt {
                    match env(var).filter(|v| !v.is_empty()) {
                        Some(v) => Secret::new(v),
                        None => {
                            tracing::info!(project = %p.name, variable = %var, "optional key variable not set; that key slot is unused");
                            continue;
                        }
                    }
                } else {
                    match secret(&slot, var) {
                        Some(s) => s,
                        None => continue,
                    }
                };
                if !keys.insert(s.expose().to_string()) {
                    return Err(err(format!("{slot}: `{var}` holds a key another project uses")));
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
            if b.week_starts.is_some() && b.period != Period::Week {
                return Err(err(format!(
                    "{}: only for period = \"week\", got period = \"{}\"",
                    key("week_starts"),
                    b.period.as_str()
                )));
            }
            let approval_above = match b.approval_above_usd {
                Some(v) if v.is_finite() && v >= 0.0 => Some(
                    Money::from_f64_usd(v)
                        .map_err(|e| err(format!("{}: {e}", key("approval_above_usd"))))?,
                ),
                Some(v) => {
                    return Err(err(format!(
                        "{}: expected >= 0, got {v}",
                        key("approval_above_usd")
                    )));
                }
                None => None,
            };
            if let Some(p) = &b.provider {
                if !self.upstream.contains_key(p) {
                    return Err(err(format!("{}: no upstream named `{p}`", key("provider"))));
                }
            }
            if b.models.as_ref().is_some_and(|m| m.is_empty()) {
                return Err(err(format!(
                    "{}: expected at least one model (omit the key for every model)",
                    key("models")
                )));
            }
            budgets.push(Budget {
                name: b.name.clone(),
                project: b.project.clone(),
                period: b.period,
                limit,
                limit_input_tokens: b.limit_input_tokens,
                limit_output_tokens: b.limit_output_tokens,
                alert_at: b.alert_at.clone(),
                policy: BudgetPolicy {
                    week_starts: b.week_starts.unwrap_or(self.week_starts),
                    hold: b.hold,
                    approval_above,
                },
                provider: b.provider.clone(),
                models: b.models.clone(),
            });
        }
        let f = self.limits.expected_output_fraction;
        if !(0.0..=1.0).contains(&f) {
            return Err(err(format!("limits.expected_output_fraction: expected 0 to 1, got {f}")));
        }
        if self.tracker.poll_min_ms == 0 || self.tracker.poll_max_ms < self.tracker.poll_min_ms {
            return Err(err("tracker.poll_max_ms: expected >= poll_min_ms > 0".into()));
        }
        if self.tracker.lease_secs < 3 {
            return Err(
                err("tracker.lease_secs: expected at least 3 (renewed every third)".into()),
            );
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
        let mut notify_raw = Vec::new();
        for (i, n) in self.notify.iter().enumerate() {
            let secret_key = format!("notify[{i}].secret_env");
            let signing = match (&n.secret_env, n.format) {
                (Some(var), _) => secret(&secret_key, var),
                (None, NotifyFormat::Json) => {
                    return Err(err(format!("{secret_key}: required for format = \"json\"")));
                }
                (None, NotifyFormat::Slack) => None,
            };
            notify_raw.push((
                secret(&format!("notify[{i}].url_env"), &n.url_env),
                n.format,
                signing,
            ));
        }
        let optional =
            |key: &str, var: &Option<String>| var.as_deref().and_then(|v| secret(key, v));
        let scoped_tokens = ScopedTokens {
            metrics: optional("admin.metrics_token_env", &self.admin.metrics_token_env),
            read: optional("admin.read_token_env", &self.admin.read_token_env),
        };
        if self.admin.approval_ttl_secs == 0 {
            return Err(err("admin.approval_ttl_secs: expected at least 1 second, got 0".into()));
        }
        let storage_url = resolve_sqlite_path(&self.storage.url, base);
        if self.upstream.is_empty() {
            return Err(err("upstream: expected at least one [upstream.NAME] table".into()));
        }
        let mut upstreams = Vec::new();
        for (name, up) in &self.upstream {
            let key = |k: &str| format!("upstream.{name}.{k}");
            if !valid_label(name) {
                return Err(err(format!(
                    "upstream.{name}: expected a name of 1-64 characters of [a-zA-Z0-9_-]"
                )));
            }
            let kind = match (&up.kind, UPSTREAM_KINDS.contains(&name.as_str())) {
                (Some(k), _) if UPSTREAM_KINDS.contains(&k.as_str()) => k.clone(),
                (Some(k), _) => {
                    return Err(err(format!(
                        "{}: expected one of {}, got `{k}`",
                        key("kind"),
                        UPSTREAM_KINDS.join(", ")
                    )));
                }
                (None, true) => name.clone(),
                (None, false) => {
                    return Err(err(format!(
                        "{}: required for an upstream not named {} (which wire format it speaks)",
                        key("kind"),
                        UPSTREAM_KINDS.join(", ")
                    )));
                }
            };
            upstreams.push(UpstreamSettings {
                name: name.clone(),
                kind,
                base_url: up.base_url.trim_end_matches('/').to_string(),
                // A placeholder when missing: the start fails below, listing every variable.
                key: secret(&key("api_key_env"), &up.api_key_env)
                    .unwrap_or_else(|| Secret::new("")),
                timeout_secs: up.timeout_secs.max(1),
                max_attempts: up.max_attempts.max(1),
            });
        }
        let admin_token = secret("admin.token_env", &self.admin.token_env);
        let missing = missing.into_inner();
        if let [one] = missing.as_slice() {
            return Err(err(one.clone()));
        }
        if !missing.is_empty() {
            return Err(err(format!(
                "{} environment variables are not set or empty (export them all, then start again):\n  {}",
                missing.len(),
                missing.join("\n  ")
            )));
        }
        let Some(admin_token) = admin_token else {
            return Err(err("admin.token_env: a secret is missing".into()));
        };
        // Every variable is set (checked above): the webhooks are complete.
        let notify: Vec<NotifyTarget> = notify_raw
            .into_iter()
            .filter_map(|(url, format, secret)| Some(NotifyTarget { url: url?, format, secret }))
            .collect();
        // One value per scope: a shared value would make a scoped token an admin token.
        let scoped = [
            ("metrics_token_env", &scoped_tokens.metrics),
            ("read_token_env", &scoped_tokens.read),
        ];
        let mut seen = vec![admin_token.expose().to_string()];
        for (key, token) in scoped {
            if let Some(t) = token {
                if seen.iter().any(|s| s == t.expose()) {
                    return Err(err(format!(
                        "admin.{key}: holds the same token as another [admin] token; each scope needs its own"
                    )));
                }
                seen.push(t.expose().to_string());
            }
        }
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
            upstreams,
            projects,
            budgets,
            admin_token,
            scoped_tokens,
            workflow: Workflow {
                notify,
                approval_ttl_secs: self.admin.approval_ttl_secs,
                ..Workflow::default()
            },
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
