//! `batchcost simulate`: settings from defaults, then an optional TOML file, then flags;
//! the key only from `--api-key` or `$BATCHCOST_SIMULATOR_KEY`, never from the file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tokio::net::TcpListener;

use super::{Faults, Operation, SimConfig, spawn};
use crate::error::CliError;

/// Arguments of `batchcost simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9500")]
    pub listen: SocketAddr,
    /// The API key clients must send (x-api-key or Authorization: Bearer).
    #[arg(long, env = "BATCHCOST_SIMULATOR_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Simulated seconds per real second (3600: an hour per second; 0: frozen).
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Seed of ids, outcomes, usage and faults.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Requests each batch completes per simulated second.
    #[arg(long = "rate")]
    pub requests_per_second: Option<f64>,
    /// Simulated seconds before a batch's first request completes.
    #[arg(long)]
    pub startup_secs: Option<f64>,
    /// Simulated seconds from cancel to end (in-flight requests still finish).
    #[arg(long)]
    pub cancel_grace_secs: Option<f64>,
    /// Share of valid requests that end errored (api_error).
    #[arg(long)]
    pub errored_fraction: Option<f64>,
    /// Share of API calls answered 500 api_error.
    #[arg(long = "fault-500")]
    pub fault_500: Option<f64>,
    /// Share of API calls answered 529 overloaded_error.
    #[arg(long = "fault-529")]
    pub fault_529: Option<f64>,
    /// Share of API calls answered 429 rate_limit_error.
    #[arg(long = "fault-429")]
    pub fault_429: Option<f64>,
    /// retry-after seconds sent with 429 and 529.
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Share of API calls answered slowly.
    #[arg(long)]
    pub slow_rate: Option<f64>,
    /// Delay of a slow answer, in milliseconds.
    #[arg(long)]
    pub slow_ms: Option<u64>,
    /// Share of results downloads cut off mid-line.
    #[arg(long)]
    pub cut_results: Option<f64>,
    /// Share of creates that succeed but answer 500 (batch created, id lost).
    #[arg(long)]
    pub create_lost: Option<f64>,
    /// Operations faults apply to (comma-separated: create,retrieve,list,cancel,delete,results,count_tokens); default all.
    #[arg(long, value_delimiter = ',', value_parser = parse_operation)]
    pub fault_ops: Option<Vec<Operation>>,
    /// Base URL put in results_url (default: http:// + the bound address).
    #[arg(long)]
    pub public_base_url: Option<String>,
    /// TOML file with any of these settings (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

fn parse_operation(s: &str) -> Result<Operation, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_string()))
        .map_err(|_| format!("unknown operation '{s}'"))
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    time_scale: Option<f64>,
    seed: Option<u64>,
    requests_per_second: Option<f64>,
    startup_secs: Option<f64>,
    cancel_grace_secs: Option<f64>,
    errored_fraction: Option<f64>,
    public_base_url: Option<String>,
    /// Replaces the built-in model list.
    models: Option<Vec<String>>,
    /// Added to the model list.
    extra_models: Option<Vec<String>>,
    faults: Option<Faults>,
}

impl SimulateArgs {
    /// Merges defaults, file and flags into a checked config and the listen address.
    pub fn into_config(self) -> Result<(SimConfig, SocketAddr), CliError> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
            }
        };
        let Some(api_key) = self.api_key.filter(|k| !k.trim().is_empty()) else {
            return Err(CliError::Usage(
                "no API key: pass --api-key KEY or set BATCHCOST_SIMULATOR_KEY".into(),
            ));
        };
        let d = SimConfig::default();
        let mut faults = file.faults.unwrap_or_default();
        let set = |slot: &mut f64, v: Option<f64>| *slot = v.unwrap_or(*slot);
        set(&mut faults.http_500_rate, self.fault_500);
        set(&mut faults.http_529_rate, self.fault_529);
        set(&mut faults.http_429_rate, self.fault_429);
        set(&mut faults.slow_rate, self.slow_rate);
        set(&mut faults.cut_results_rate, self.cut_results);
        set(&mut faults.create_lost_rate, self.create_lost);
        faults.retry_after_secs = self.retry_after.unwrap_or(faults.retry_after_secs);
        faults.slow_ms = self.slow_ms.unwrap_or(faults.slow_ms);
        if let Some(ops) = self.fault_ops {
            faults.operations = ops;
        }
        let mut models = file.models.unwrap_or(d.models);
        models.extend(file.extra_models.unwrap_or_default());
        let config = SimConfig {
            api_key,
            time_scale: self.time_scale.or(file.time_scale).unwrap_or(d.time_scale),
            seed: self.seed.or(file.seed).unwrap_or(d.seed),
            requests_per_second: self
                .requests_per_second
                .or(file.requests_per_second)
                .unwrap_or(d.requests_per_second),
            startup_secs: self.startup_secs.or(file.startup_secs).unwrap_or(d.startup_secs),
            cancel_grace_secs: self
                .cancel_grace_secs
                .or(file.cancel_grace_secs)
                .unwrap_or(d.cancel_grace_secs),
            errored_fraction: self
                .errored_fraction
                .or(file.errored_fraction)
                .unwrap_or(d.errored_fraction),
            faults,
            public_base_url: self.public_base_url.or(file.public_base_url),
            models,
            clock: d.clock,
        };
        config.validate().map_err(CliError::Usage)?;
        let listen = file.listen.filter(|_| self.listen == default_listen()).unwrap_or(self.listen);
        Ok((config, listen))
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9500))
}

/// Runs the simulator until Ctrl-C or SIGTERM.
pub async fn run(args: SimulateArgs) -> Result<(), CliError> {
    crate::telemetry::init();
    let (config, listen) = args.into_config()?;
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        CliError::Runtime(anyhow::Error::new(e).context(format!("binding {listen}")))
    })?;
    let handle = spawn(config, listener).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", handle.addr()).and_then(|()| out.flush()).ok();
    drop(out);
    crate::shutdown::signal().await;
    tracing::info!("simulator shutting down");
    handle.shutdown().await;
    Ok(())
}
