"""Process logs of a test session live in one temporary folder that a passing session
removes (conftest's pytest_sessionfinish) and a failing one keeps and names, so test runs
no longer leave dozens of gateway logs in the system temp folder."""

import tempfile
from pathlib import Path

import gateway_stack


def test_logs_go_to_one_folder_that_a_passing_session_removes(monkeypatch, capsys):
    monkeypatch.setattr(gateway_stack, "_log_dir", None)
    sim = gateway_stack.simulator()
    try:
        folder = sim.log_path.parent
        assert folder == gateway_stack.log_dir()
        assert folder.parent == Path(tempfile.gettempdir())
        assert folder.name.startswith("batchcost-test-logs-")
    finally:
        sim.stop()
    assert sim.logs() != "" or sim.log_path.exists()
    gateway_stack.clean_logs(passed=False)
    assert folder.exists() and str(folder) in capsys.readouterr().out
    gateway_stack.clean_logs(passed=True)
    assert not folder.exists()
