"""`batchcost simulate` as a command: key handling, config file, exit statuses, signals."""

import os
import signal
import subprocess

import pytest

from conftest import BIN, KEY, Simulator

pytestmark = pytest.mark.usefixtures("no_ambient_credentials")


def run(*args, env_key=None, timeout=30):
    env = {k: v for k, v in os.environ.items() if k != "BATCHCOST_SIMULATOR_KEY"}
    if env_key is not None:
        env["BATCHCOST_SIMULATOR_KEY"] = env_key
    return subprocess.run([BIN, "simulate", "--listen", "127.0.0.1:0", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_without_a_key_it_exits_2_and_says_how_to_give_one():
    r = run()
    assert r.returncode == 2
    assert "--api-key" in r.stderr and "BATCHCOST_SIMULATOR_KEY" in r.stderr
    assert r.stdout == ""


def test_bad_settings_exit_2_naming_the_setting(tmp_path):
    r = run("--api-key", KEY, "--fault-500", "1.5")
    assert r.returncode == 2 and "http_500_rate" in r.stderr
    cfg = tmp_path / "sim.toml"
    cfg.write_text('time_scale = 10\nsurprise = 1\n')
    r = run("--api-key", KEY, "--config", str(cfg))
    assert r.returncode == 2 and "surprise" in r.stderr and str(cfg) in r.stderr
    r = run("--api-key", KEY, "--fault-ops", "create,teleport")
    assert r.returncode == 2 and "teleport" in r.stderr


def test_the_key_can_come_from_the_environment_and_is_never_printed():
    env = {k: v for k, v in os.environ.items()}
    env["BATCHCOST_SIMULATOR_KEY"] = "env-key-7781"
    proc = subprocess.Popen([BIN, "simulate", "--listen", "127.0.0.1:0", "--time-scale", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:")
    import anthropic
    client = anthropic.Anthropic(base_url=line.split()[-1], api_key="env-key-7781", max_retries=0)
    assert list(client.messages.batches.list()) == []
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, "SIGTERM is a clean shutdown"
    assert out == "", "exactly one line on stdout"
    assert "env-key-7781" not in err


def test_a_config_file_sets_faults_and_flags_win(tmp_path):
    cfg = tmp_path / "sim.toml"
    cfg.write_text('time_scale = 0\nseed = 3\n[faults]\nhttp_429_rate = 1.0\nretry_after_secs = 2\n'
                   'operations = ["list"]\n')
    sim = Simulator("--config", str(cfg), "--retry-after", "5")
    try:
        faults = sim.ctl("GET", "/_sim/faults")
        assert faults["http_429_rate"] == 1.0 and faults["retry_after_secs"] == 5
        assert faults["operations"] == ["list"]
        status, headers, body = sim.raw("GET", "/v1/messages/batches")
        assert status == 429 and headers["retry-after"] == "5"
        assert body["error"]["type"] == "rate_limit_error"
        assert sim.raw("GET", "/v1/messages/batches/msgbatch_x")[0] == 404, "other operations unaffected"
    finally:
        sim.stop()
