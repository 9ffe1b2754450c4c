//! `batchcost simulate`: settings from defaults, then an optional TOML file, then flags;
//! the key only from `--api-key` or `$BATCHCOST_SIMULATOR_KEY`, never from the file.
//! Every flag's help names its default (flags are optional so that a file value is only
//! overridden by a flag actually given).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tokio::net::TcpListener;

use crate::error::CliError;
use crate::simulator::{Faults, Operation, OutputShape, SimConfig, spawn};

/// Arguments of `batchcost simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (:0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9500")]
    pub listen: SocketAddr,
    /// The API key clients must send (Anthropic: x-api-key or Authorization: Bearer; OpenAI: Bearer; Gemini: x-goog-api-key or ?key=). Required, here or in the environment. A gateway in front of the simulator must use the same value as its upstream key.
    #[arg(long, env = "BATCHCOST_SIMULATOR_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Simulated seconds per real second (3600: an hour per second; 0: frozen) [default: 1].
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Seed of ids, outcomes, usage and faults [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Requests each batch completes per simulated second [default: 50].
    #[arg(long = "rate")]
    pub requests_per_second: Option<f64>,
    /// Simulated seconds before a batch's first request completes [default: 60].
    #[arg(long)]
    pub startup_secs: Option<f64>,
    /// Simulated seconds from cancel to end (in-flight requests still finish) [default: 5].
    #[arg(long)]
    pub cancel_grace_secs: Option<f64>,
    /// Share of valid requests that end errored with an internal error (api_error / 500) [default: 0].
    #[arg(long)]
    pub errored_fraction: Option<f64>,
    /// Share of valid requests that end errored as overloaded (retryable: overloaded_error / 503 / UNAVAILABLE) [default: 0].
    #[arg(long)]
    pub overloaded_fraction: Option<f64>,
    /// Share of valid requests that end errored as invalid (not retryable: invalid_request_error / 400 / INVALID_ARGUMENT) [default: 0].
    #[arg(long)]
    pub invalid_fraction: Option<f64>,
    /// Share of answers that run to the output cap [default: 0.05].
    #[arg(long)]
    pub truncated_fraction: Option<f64>,
    /// Other answers take cap * u^E output tokens, u uniform (2: mean a third of the cap; 1: a half) [default: 2].
    #[arg(long)]
    pub output_exponent: Option<f64>,
    /// OpenAI request_counts and Gemini batchStats move as requests complete, not all at the end [default: off].
    #[arg(long)]
    pub progressive_counts: bool,
    /// Simulated seconds an OpenAI batch stays validating (at most startup-secs) [default: 2].
    #[arg(long)]
    pub validating_secs: Option<f64>,
    /// Simulated seconds an OpenAI batch stays finalizing after its last request [default: 5].
    #[arg(long)]
    pub finalizing_secs: Option<f64>,
    /// Share of API calls answered 500 (api_error / server_error / INTERNAL) [default: 0].
    #[arg(long = "fault-500")]
    pub fault_500: Option<f64>,
    /// Share of API calls answered overloaded (Anthropic 529 overloaded_error; OpenAI, Gemini 503) [default: 0].
    #[arg(long = "fault-529")]
    pub fault_529: Option<f64>,
    /// Share of API calls answered 429 rate limited (rate_limit_error / rate_limit_exceeded / RESOURCE_EXHAUSTED) [default: 0].
    #[arg(long = "fault-429")]
    pub fault_429: Option<f64>,
    /// retry-after seconds sent with 429 and overloaded answers [default: 0].
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Share of API calls answered slowly [default: 0].
    #[arg(long)]
    pub slow_rate: Option<f64>,
    /// Delay of a slow answer, in milliseconds [default: 0].
    #[arg(long)]
    pub slow_ms: Option<u64>,
    /// Share of results downloads cut off mid-line [default: 0].
    #[arg(long)]
    pub cut_results: Option<f64>,
    /// Share of creates that succeed but answer 500 (batch created, id lost) [default: 0].
    #[arg(long)]
    pub create_lost: Option<f64>,
    /// Operations faults apply to (comma-separated: create,retrieve,list,cancel,delete,results,count_tokens,upload,files) [default: all].
    #[arg(long, value_delimiter = ',', value_parser = parse_operation)]
    pub fault_ops: Option<Vec<Operation>>,
    /// Base URL put in results_url and upload URLs [default: http:// + the bound address].
    #[arg(long)]
    pub public_base_url: Option<String>,
    /// TOML file with any of these settings (flags win over the file, the file over the defaults shown) [default: none].
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
    overloaded_fraction: Option<f64>,
    invalid_fraction: Option<f64>,
    progressive_counts: Option<bool>,
    validating_secs: Option<f64>,
    finalizing_secs: Option<f64>,
    /// `truncated_fraction` and `exponent`.
    output: Option<OutputShape>,
    public_base_url: Option<String>,
    /// Replaces the built-in model list.
    models: Option<Vec<String>>,
    /// Replaces the built-in OpenAI model list.
    openai_models: Option<Vec<String>>,
    /// Replaces the built-in Gemini model list.
    gemini_models: Option<Vec<String>>,
    /// Added to every surface's model list.
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
        let mut output = file.output.unwrap_or(d.output);
        set(&mut output.truncated_fraction, self.truncated_fraction);
        set(&mut output.exponent, self.output_exponent);
        let extra = file.extra_models.unwrap_or_default();
        let mut models = file.models.unwrap_or(d.models);
        models.extend(extra.iter().cloned());
        let mut openai_models = file.openai_models.unwrap_or(d.openai_models);
        openai_models.extend(extra.iter().cloned());
        let mut gemini_models = file.gemini_models.unwrap_or(d.gemini_models);
        gemini_models.extend(extra.iter().cloned());
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
            overloaded_fraction: self
                .overloaded_fraction
                .or(file.overloaded_fraction)
                .unwrap_or(d.overloaded_fraction),
            invalid_fraction: self
                .invalid_fraction
                .or(file.invalid_fraction)
                .unwrap_or(d.invalid_fraction),
            output,
            progressive_counts: self.progressive_counts
                || file.progressive_counts.unwrap_or(d.progressive_counts),
            validating_secs: self
                .validating_secs
                .or(file.validating_secs)
                .unwrap_or(d.validating_secs),
            finalizing_secs: self
                .finalizing_secs
                .or(file.finalizing_secs)
                .unwrap_or(d.finalizing_secs),
            faults,
            public_base_url: self.public_base_url.or(file.public_base_url),
            models,
            openai_models,
            gemini_models,
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
    let stop = crate::shutdown::signal();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", handle.addr()).and_then(|()| out.flush()).ok();
    drop(out);
    stop.await;
    tracing::info!("simulator shutting down");
    handle.shutdown().await;
    Ok(())
}
