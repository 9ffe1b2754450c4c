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
        (example().replace("period = \"day\"", "period = \"week\""), "unknown variant `week`"),
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
