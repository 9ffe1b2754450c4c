//! The config is strict: the shipped example loads, and mistakes are named by file, key and
//! what was expected.

use std::path::Path;

use batchcost::config::Config;

fn env(k: &str) -> Option<String> {
    ["ANTHROPIC_API_KEY", "SEARCH_KEY", "SUPPORT_KEY", "SUPPORT_KEY_NEXT", "BATCHCOST_ADMIN_TOKEN"]
        .contains(&k)
        .then(|| format!("value-of-{k}"))
}

fn load(text: &str) -> Result<batchcost::config::Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batchcost.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).and_then(|c| c.resolve(&path, &env)).map_err(|e| e.to_string())
}

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/batchcost.toml"))
        .unwrap()
}

#[test]
fn the_shipped_example_loads() {
    let s = load(&example()).unwrap();
    assert_eq!(s.projects.len(), 2);
    assert_eq!(s.budgets.len(), 3);
    assert_eq!(s.budgets[0].limit.unwrap().usd_exact(), "50");
    assert_eq!(s.timezone_name, "Asia/Seoul");
    assert_eq!(s.upstreams[0].key.expose(), "value-of-ANTHROPIC_API_KEY");
    assert!(!format!("{s:?}").contains("value-of-"), "Debug must redact secrets");
}

#[test]
fn mistakes_are_named() {
    let cases = [
        (example().replace("timezone = ", "timezon = "), "unknown field `timezon`"),
        (
            example().replace("Asia/Seoul", "Asia/Nowhere"),
            "timezone: expected an IANA time zone name",
        ),
        (
            example().replace("SEARCH_KEY", "MISSING_KEY"),
            "projects[0].api_key_envs[0]: environment variable `MISSING_KEY` is not set",
        ),
        (
            example().replace("project = \"search\"", "project = \"serch\""),
            "budgets[0].project: no project named `serch`",
        ),
        (
            example().replace("limit_usd = 50.0", "limit_usd = -5.0"),
            "budgets[0].limit_usd: expected >= 0",
        ),
        (
            example().replace("alert_at = [0.5, 0.8, 1.0]", "alert_at = [80]"),
            "budgets[0].alert_at[0]: expected a fraction",
        ),
        (
            example().replace("period = \"day\"", "period = \"fortnight\""),
            "unknown variant `fortnight`",
        ),
        (
            example().replace("name = \"support\"", "name = \"search\""),
            "projects[1].name: duplicate project",
        ),
    ];
    for (text, expected) in cases {
        let err = load(&text).unwrap_err();
        assert!(err.contains("batchcost.toml"), "{err}");
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
    let line = load(&example().replace("timezone = ", "timezon = ")).unwrap_err();
    assert!(line.contains("line 5"), "syntax-level errors carry the line: {line}");
}

#[test]
fn the_server_table_has_defaults_and_is_strict() {
    let s = load(&example()).unwrap();
    assert_eq!(s.server, batchcost::config::Server::default());
    assert_eq!(s.server.header_read_timeout_secs, 30);
    assert_eq!(s.server.shutdown_grace_secs, 150);
    let set = load(&format!("{}\n[server]\nbody_idle_timeout_secs = 5\n", example())).unwrap();
    assert_eq!(set.server.body_idle_timeout_secs, 5);
    assert_eq!(set.server.body_total_timeout_secs, 600);
    let zero = load(&format!("{}\n[server]\nshutdown_grace_secs = 0\n", example())).unwrap_err();
    assert!(zero.contains("server.shutdown_grace_secs: expected at least 1 second"), "{zero}");
    let typo = load(&format!("{}\n[server]\nheader_timeout_secs = 5\n", example())).unwrap_err();
    assert!(typo.contains("unknown field `header_timeout_secs`"), "{typo}");
}

#[test]
fn budget_windows_holds_approvals_notify_and_scoped_tokens() {
    use batchcost::config::{HoldPolicy, NotifyFormat, Period, WeekStart};
    let extra = |k: &str| matches!(k, "HOOK" | "HOOK_SECRET" | "METRICS_T" | "READ_T");
    let text = example()
        .replace("timezone = ", "week_starts = \"sunday\"\ntimezone = ")
        .replace("period = \"month\"", "period = \"quarter\"")
        .replace(
            "limit_output_tokens = 20000000",
            "limit_output_tokens = 20000000\nperiod_placeholder = 1",
        )
        .replace("period = \"day\"\nlimit_usd = 20.0", "period = \"week\"\nlimit_usd = 20.0")
        .replace("period_placeholder = 1", "week_starts = \"wednesday\"\nhold = \"calibrated\"\napproval_above_usd = 5.5")
        .replace(
            "[admin]\n",
            "[[notify]]\nurl_env = \"HOOK\"\nformat = \"json\"\nsecret_env = \"HOOK_SECRET\"\n[[notify]]\nurl_env = \"HOOK\"\nformat = \"slack\"\n[admin]\nmetrics_token_env = \"METRICS_T\"\nread_token_env = \"READ_T\"\napproval_ttl_secs = 3600\n",
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batchcost.toml");
    std::fs::write(&path, &text).unwrap();
    let env2 = |k: &str| if extra(k) { Some(format!("value-of-{k}")) } else { env(k) };
    let s = Config::load(&path).and_then(|c| c.resolve(&path, &env2)).map_err(|e| e.to_string());
    let s = s.unwrap_or_else(|e| panic!("{e}\n{text}"));
    let support = &s.budgets[1];
    assert_eq!(support.period, Period::Week);
    assert_eq!(support.policy.week_starts, WeekStart::Wednesday);
    assert_eq!(support.policy.hold, HoldPolicy::Calibrated);
    assert_eq!(support.policy.approval_above.unwrap().usd_exact(), "5.5");
    assert_eq!(s.budgets[0].policy.hold, HoldPolicy::WorstCase);
    assert_eq!(s.budgets[2].period, Period::Quarter);
    assert_eq!(s.workflow.notify.len(), 2);
    assert_eq!(s.workflow.notify[0].format, NotifyFormat::Json);
    assert_eq!(s.workflow.notify[0].secret.as_ref().unwrap().expose(), "value-of-HOOK_SECRET");
    assert_eq!(s.workflow.approval_ttl_secs, 3600);
    assert_eq!(s.scoped_tokens.metrics.as_ref().unwrap().expose(), "value-of-METRICS_T");
    assert!(!format!("{s:?}").contains("value-of-"), "Debug must redact secrets");

    let bad = [
        (
            text.replace("week_starts = \"wednesday\"", "week_starts = \"someday\""),
            "unknown variant `someday`",
        ),
        (
            text.replace("period = \"quarter\"", "period = \"quarter\"\nweek_starts = \"monday\""),
            "budgets[2].week_starts: only for period = \"week\"",
        ),
        (text.replace("hold = \"calibrated\"", "hold = \"lucky\""), "unknown variant `lucky`"),
        (
            text.replace("approval_above_usd = 5.5", "approval_above_usd = -1.0"),
            "budgets[1].approval_above_usd: expected >= 0",
        ),
        (
            text.replace("secret_env = \"HOOK_SECRET\"\n", ""),
            "notify[0].secret_env: required for format = \"json\"",
        ),
        (
            text.replace(
                "url_env = \"HOOK\"\nformat = \"slack\"",
                "url_env = \"NOPE\"\nformat = \"slack\"",
            ),
            "notify[1].url_env: environment variable `NOPE` is not set",
        ),
        (text.replace("format = \"slack\"", "format = \"teams\""), "unknown variant `teams`"),
        (
            text.replace("read_token_env = \"READ_T\"", "read_token_env = \"UNSET_T\""),
            "admin.read_token_env: environment variable `UNSET_T`",
        ),
        (
            text.replace("approval_ttl_secs = 3600", "approval_ttl_secs = 0"),
            "admin.approval_ttl_secs: expected at least 1 second",
        ),
        (
            text.replace(
                "read_token_env = \"READ_T\"",
                "read_token_env = \"BATCHCOST_ADMIN_TOKEN\"",
            ),
            "admin.read_token_env: holds the same token",
        ),
        (
            text.replace("read_token_env = \"READ_T\"", "read_token_env = \"METRICS_T\""),
            "admin.read_token_env: holds the same token",
        ),
        (
            text.replace(
                "[[notify]]\nurl_env = \"HOOK\"\nformat = \"slack\"",
                "[[notify]]\nurl_env = \"HOOK\"\nformat = \"slack\"\nurl = \"x\"",
            ),
            "unknown field `url`",
        ),
    ];
    for (t, want) in bad {
        std::fs::write(&path, &t).unwrap();
        let e = Config::load(&path)
            .and_then(|c| c.resolve(&path, &env2))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "expected `{want}` in: {e}");
        assert!(e.contains("batchcost.toml"), "the file is named: {e}");
    }
}
