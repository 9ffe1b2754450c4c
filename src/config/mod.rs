//! Typed, strict configuration (`batchcost.toml`, contract section 3). Unknown keys are
//! errors; secrets are read from the environment variables the file names, never from the
//! file, and held in [`Secret`] so they cannot reach a log line by accident.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

mod resolve;
mod secret;

pub use resolve::*;
pub use secret::Secret;

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
    pub upstream: Upstreams,
    #[serde(default)]
    pub projects: Vec<Project>,
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    /// The first day of `period = "week"` budgets (default Monday).
    #[serde(default)]
    pub week_starts: WeekStart,
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    pub admin: Admin,
    #[serde(default)]
    pub tracker: Tracker,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub server: Server,
    /// `[log]`: how the gateway writes its log (stderr).
    #[serde(default)]
    pub log: Log,
}

/// `[log]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `"text"` (default: colour only when stderr is a terminal) or `"json"` (one object
    /// per line, for log shippers). `serve --log-format` wins over this.
    #[serde(default)]
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// `sqlite://path.db` (relative to the config file), `sqlite::memory:`, or
    /// `postgres://user@host/db` (several replicas share it).
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

/// `[upstream.NAME]`: one table per upstream; the name is the `provider` label, the
/// price table's provider and the surface prefix `/NAME`.
pub type Upstreams = std::collections::BTreeMap<String, UpstreamConfig>;

/// `[upstream.NAME]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Wire format: `anthropic`, `openai` or `gemini`. Defaults to the name when the name
    /// is one of those; required otherwise (`[upstream.together] kind = "openai"`).
    #[serde(default)]
    pub kind: Option<String>,
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
    /// More key variables that may be unset (a rotation slot: set `SUPPORT_KEY_NEXT`
    /// when issuing the next key, move it to `api_key_envs` once every client uses it).
    /// An unset one is skipped and named in the startup log line.
    #[serde(default)]
    pub optional_api_key_envs: Vec<String>,
}

/// Budget window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
        }
    }
}

/// The day a weekly budget's window begins (at local midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeekStart {
    #[default]
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl WeekStart {
    pub fn weekday(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as W;
        match self {
            WeekStart::Monday => W::Monday,
            WeekStart::Tuesday => W::Tuesday,
            WeekStart::Wednesday => W::Wednesday,
            WeekStart::Thursday => W::Thursday,
            WeekStart::Friday => W::Friday,
            WeekStart::Saturday => W::Saturday,
            WeekStart::Sunday => W::Sunday,
        }
    }
}

/// How much of a budget a batch occupies while in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldPolicy {
    /// The priced worst case: a budget can never be overshot.
    #[default]
    WorstCase,
    /// Learned from this project's settled batches of the same model; may overshoot by
    /// at most the budget's reported possible overshoot.
    Calibrated,
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
    /// `period = "week"` only: overrides the top-level `week_starts`.
    #[serde(default)]
    pub week_starts: Option<WeekStart>,
    #[serde(default)]
    pub hold: HoldPolicy,
    /// A batch whose hold is above this waits for an admin's approval.
    #[serde(default)]
    pub approval_above_usd: Option<f64>,
    /// Only this upstream's batches count (omitted: every upstream).
    #[serde(default)]
    pub provider: Option<String>,
    /// Only these models' requests count (omitted: every model).
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Guards `/api/*` and, when set, `/metrics`.
    pub token_env: String,
    /// Optional token for `GET /metrics` only (Prometheus's scrape config).
    #[serde(default)]
    pub metrics_token_env: Option<String>,
    /// Optional token for the read-only `/api/*` routes (finance, dashboards).
    #[serde(default)]
    pub read_token_env: Option<String>,
    /// How long an approval admits its batch, seconds (default 24 h).
    #[serde(default = "default_approval_ttl")]
    pub approval_ttl_secs: u64,
}

fn default_approval_ttl() -> u64 {
    24 * 3600
}

/// `[[notify]]`: a webhook told when a budget crosses one of its `alert_at` thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Environment variable holding the URL (webhook URLs are credentials).
    pub url_env: String,
    pub format: NotifyFormat,
    /// `format = "json"`: environment variable holding the HMAC-SHA256 key.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// A webhook body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// `{"text": ...}`: Slack incoming webhooks and the many chat tools that copy them.
    Slack,
    /// A structured body signed in `x-batchcost-signature: sha256=HEX`.
    Json,
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
    /// How long a replica's claim on a batch (tracking it, creating it upstream, settling
    /// it) lasts without renewal; renewed every third of it while the replica lives, taken
    /// over by another replica once it runs out. A replica killed outright delays its
    /// batches by at most this long.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            poll_min_ms: default_poll_min(),
            poll_max_ms: default_poll_max(),
            reconcile_after_secs: default_reconcile_after(),
            lease_secs: default_lease(),
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

fn default_lease() -> u64 {
    30
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
    /// finish before the process exits anyway. Set it above `upstream.NAME.timeout_secs`
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
