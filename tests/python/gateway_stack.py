"""Starts the real binaries for the gateway tests: `batchcost simulate` and
`batchcost serve`, each on port 0, found through the `listening on` line they print once
bound (no sleeps), and stopped (or killed) at the end."""

import atexit
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import urllib.request
from pathlib import Path

BIN = os.environ.get("BATCHCOST_BIN", "target/debug/batchcost")
REPO = Path(os.environ.get("BATCHCOST_REPO", Path(__file__).resolve().parents[2]))

_log_dir = None


def log_dir() -> Path:
    """One folder per test session for the processes' logs: removed when every test passed
    (conftest's pytest_sessionfinish), kept and named when one failed."""
    global _log_dir
    if _log_dir is None:
        _log_dir = Path(tempfile.mkdtemp(prefix="batchcost-test-logs-"))
    return _log_dir


def clean_logs(passed: bool):
    """Called once at the end of the session."""
    global _log_dir
    if _log_dir is None:
        return
    if passed:
        shutil.rmtree(_log_dir, ignore_errors=True)
        _log_dir = None
    else:
        print(f"\nbatchcost process logs kept in {_log_dir}")


class Proc:
    def __init__(self, args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("RUST_LOG", "info")
        self.log_path = log_dir() / f"{Path(args[1]).name}-{os.getpid()}-{id(self)}.log"
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=full_env, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("listening on "):
            self.p.kill()
            raise RuntimeError(f"{args[1]} did not start: {line!r}; log: {self.log_path.read_text()[-2000:]}")
        self.url = line.split("listening on ", 1)[1].strip()

    def stop(self, kill=False):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()

    def logs(self):
        return self.log_path.read_text()


PG_ADMIN = os.environ.get("BATCHCOST_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
ON_POSTGRES = os.environ.get("BATCHCOST_TEST_STORAGE") == "postgres"
_pg_seq = itertools.count()


def psql(url, sql):
    """stdout of one statement through the real `psql` client (no Python driver needed)."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr}")
    return out.stdout


class Ledger:
    """One test's ledger: a SQLite file in `folder`, or (BATCHCOST_TEST_STORAGE=postgres, or
    postgres=True) a fresh PostgreSQL database dropped when the tests end. `url` goes in the
    config; `rows` reads it directly, as an operator would."""

    def __init__(self, folder, postgres=None):
        self.postgres = ON_POSTGRES if postgres is None else postgres
        if self.postgres:
            self.name = f"batchcost_test_{os.getpid()}_{next(_pg_seq)}"
            psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {self.name}")
            psql(PG_ADMIN, f"CREATE DATABASE {self.name}")
            self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.name
            atexit.register(self.drop)
        else:
            self.path = Path(folder) / "ledger.db"
            self.url = f"sqlite://{self.path}"

    def rows(self, sql):
        """The rows of a query as tuples (`group_concat` is spelled for each backend)."""
        if not self.postgres:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        sql = sql.replace("group_concat(r.state)", "string_agg(r.state, ',')")
        out = psql(self.url, f"SELECT coalesce(json_agg(row_to_json(t)), '[]') FROM ({sql}) t")
        return [tuple(r.values()) for r in json.loads(out)]

    def drop(self):
        if self.postgres:
            psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def simulator(key="sim-provider-key", time_scale=3600, seed=7, extra=()):
    return Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", key,
                 "--time-scale", str(time_scale), "--seed", str(seed), *extra])


def write_config(path, upstream_url, projects, budgets, db, tracker_ms=(100, 1000), reconcile_after=2,
                 lease_secs=3):
    """projects: {name: [env var, ...]}; budgets: list of dicts (TOML tables); db: a Ledger
    or a SQLite file's path."""
    url = db.url if isinstance(db, Ledger) else f"sqlite://{db}"
    lines = [
        'listen = "127.0.0.1:0"',
        f'pricing = "{REPO / "pricing.toml"}"',
        'timezone = "Asia/Seoul"',
        "[storage]",
        f'url = "{url}"',
        "[upstream.anthropic]",
        f'base_url = "{upstream_url}"',
        'api_key_env = "TEST_PROVIDER_KEY"',
        "timeout_secs = 30",
        "[admin]",
        'token_env = "TEST_ADMIN_TOKEN"',
        "[tracker]",
        f"poll_min_ms = {tracker_ms[0]}",
        f"poll_max_ms = {tracker_ms[1]}",
        f"reconcile_after_secs = {reconcile_after}",
        f"lease_secs = {lease_secs}",
    ]
    for name, envs in projects.items():
        lines += ["[[projects]]", f'name = "{name}"', "api_key_envs = [" + ", ".join(f'"{e}"' for e in envs) + "]"]
    for b in budgets:
        lines.append("[[budgets]]")
        for k, v in b.items():
            if isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            elif isinstance(v, list):
                lines.append(f"{k} = [" + ", ".join(str(x) for x in v) + "]")
            else:
                lines.append(f"{k} = {v}")
    Path(path).write_text("\n".join(lines) + "\n")


def gateway(config, env):
    return Proc([BIN, "serve", "--config", str(config)], env=env)


def admin_get(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()
