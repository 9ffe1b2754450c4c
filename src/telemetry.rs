//! Logging setup in one place: `RUST_LOG` filters, default `info`. Text lines carry colour
//! only when stderr is a terminal (a log file or a pipe gets plain text); `json` writes one
//! JSON object per line for log shippers.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global text subscriber once; later calls are no-ops.
pub fn init() {
    init_with(LogFormat::Text);
}

/// Installs the global subscriber in `format` once; later calls are no-ops.
pub fn init_with(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        // Fields flattened beside `message`, the current span's fields kept: one flat object
        // a shipper can index without knowing our span names.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The one line a starting gateway logs: where it sends batches (upstream URLs, never a
/// key), who may call it, what limits apply, which prices and which ledger. Enough to
/// answer "is this the configuration I meant?" from the log alone.
pub fn log_startup(s: &crate::config::Settings, pricing_version: &str, addr: &str) {
    let projects: Vec<String> = s
        .projects
        .iter()
        .map(|(name, keys)| {
            format!("{name} ({} key{})", keys.len(), if keys.len() == 1 { "" } else { "s" })
        })
        .collect();
    let budgets: Vec<String> = s.budgets.iter().map(budget_summary).collect();
    tracing::info!(
        listen = %addr,
        upstreams = %s
            .upstreams
            .iter()
            .map(|u| format!("{}={}", u.name, ledger_location(&u.base_url)))
            .collect::<Vec<_>>()
            .join(", "),
        projects = %projects.join(", "),
        budgets = %budgets.join(", "),
        pricing_version = %pricing_version,
        pricing = %s.pricing_path.display(),
        ledger = %ledger_location(&s.storage_url),
        timezone = %s.timezone_name,
        "gateway started"
    );
}

fn budget_summary(b: &crate::config::Budget) -> String {
    let mut limits = Vec::new();
    if let Some(l) = b.limit {
        limits.push(format!("${}", l.usd_exact()));
    }
    if let Some(n) = b.limit_input_tokens {
        limits.push(format!("{n} input tokens"));
    }
    if let Some(n) = b.limit_output_tokens {
        limits.push(format!("{n} output tokens"));
    }
    let scope = b.project.as_deref().unwrap_or(crate::budgets::ALL_PROJECTS);
    format!("{} ({scope}, {}, {})", b.name, b.period.as_str(), limits.join(" + "))
}

/// A storage URL without credentials: `postgres://user:pw@host/db` shows as
/// `postgres://host/db`; a SQLite URL shows its path.
pub fn ledger_location(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.split(':').next().unwrap_or("").to_string() + ":";
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // Query strings may carry a password too (`?password=`): drop them.
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() && !rest.contains('/') {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::ledger_location;

    #[test]
    fn ledger_location_never_shows_credentials() {
        assert_eq!(ledger_location("sqlite:///var/lib/bc.db"), "sqlite:///var/lib/bc.db");
        assert_eq!(ledger_location("sqlite://bc.db"), "sqlite://bc.db");
        assert_eq!(
            ledger_location("postgres://u:s3cret@db.internal:5432/bc?password=x"),
            "postgres://db.internal:5432/bc"
        );
        assert_eq!(ledger_location("postgres://db"), "postgres://db");
        assert_eq!(ledger_location("sqlite::memory:"), "sqlite:");
    }
}
