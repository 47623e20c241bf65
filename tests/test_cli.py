"""Tests of the ``dbapi-pool`` command line (``dbapi-pool bench``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from dbapi_pool import cli
from dbapi_pool.cli import format_report, main, percentile

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
UNREACHABLE_URL = "postgresql+psycopg2://postgres@127.0.0.1:1/test"
PASSWORD = "hunter2-Secret"
QUICK = ["--duration", "0.3", "--quiet"]
TIMINGS = ("wait", "use", "connect")
POOL_STATS_KEYS = {
    "size",
    "idle",
    "in_use",
    "waiting",
    "checkouts",
    "waits",
    "timeouts",
    "connects",
    "connect_failures",
    "connect_timeouts",
    "closes",
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``dbapi-pool bench`` with ``args``; return its status, stdout and stderr."""
    status = main(["bench", *args])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run ``dbapi-pool bench --json`` and return the parsed report."""
    status, out, err = run(capsys, *QUICK, "--json", *args)
    assert status == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def assert_one_error_line(err: str, *fragments: str) -> None:
    """Check stderr is one ``dbapi-pool: error:`` line, with no traceback."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dbapi-pool: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# -- the percentile helper -------------------------------------------------------------


def test_percentile_of_1_to_100_is_the_value_of_that_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert [percentile(values, p) for p in (0, 1, 50, 95, 99, 100)] == [1, 1, 50, 95, 99, 100]


def test_percentile_uses_the_nearest_rank_not_interpolation() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [percentile(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]


def test_percentile_is_not_pushed_up_a_rank_by_float_noise() -> None:
    values = [float(i) for i in range(1, 1001)]
    assert percentile(values, 99.9) == 999
    assert percentile(values, 95) == 950


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.5], 50) == percentile([7.5], 99) == 7.5


def test_percentile_refuses_no_values_and_out_of_range_ranks() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# -- the default SQLite run ------------------------------------------------------------


def test_default_run_on_sqlite_reports_throughput_percentiles_and_stats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, *QUICK)
    assert status == 0, err
    assert err == ""
    for text in ("sqlite (temporary file)", "ops/s", "p50", "p95", "p99", "max", "conn. wait"):
        assert text in out
    for key in ("checkouts", "waits", "timeouts", "connects", "connect_failures", "idle"):
        assert f"{key} " in out
    assert "errors           0" in out


def test_json_report_has_the_expected_keys_and_sane_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = run_json(capsys, "--workers", "3", "--pool-size", "2")
    assert report["target"] == "sqlite (temporary file)"
    assert report["workers"] == 3 and report["pool_size"] == 2 and report["duration"] == 0.3
    assert report["ops"] > 0 and report["throughput"] > 0
    assert report["elapsed"] >= 0.3
    latency, wait = report["latency_ms"], report["wait_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    # A mean may exceed p99 (a few waits as long as the hand-off window), never the max.
    assert 0 <= wait["p99"] <= wait["max"] and 0 <= wait["mean"] <= wait["max"]
    assert wait["total"] >= 0
    assert report["errors"] == {"total": 0, "by_type": {}}
    assert set(report["pool"]) >= POOL_STATS_KEYS
    assert report["pool"]["checkouts"] == report["ops"] + 1  # the probe, then the run
    assert report["pool"]["in_use"] == 0 and report["pool"]["size"] <= 2


def test_report_gives_the_pools_own_wait_use_and_connect_percentiles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = run_json(capsys, "--workers", "3", "--pool-size", "2", "--hold-ms", "2")
    timings = report["timings_ms"]
    assert set(timings) == set(TIMINGS)
    assert timings["wait"]["count"] == timings["use"]["count"] == report["ops"] + 1
    assert timings["connect"]["count"] == report["pool"]["connects"]
    for key in TIMINGS:
        assert 0 <= timings[key]["p50"] <= timings[key]["p90"] <= timings[key]["p99"]
    # Each checkout held its connection at least the 2 ms hold (estimates: x1.78 at most).
    assert timings["use"]["p50"] >= 2 / 1.78
    status, out, err = run(capsys, *QUICK)
    assert status == 0, err
    for label in ("wait", "use", "connect"):
        line = next(x for x in out.splitlines() if x.strip().startswith(label + " "))
        assert "p50 " in line and "p90 " in line and "p99 " in line and "(n=" in line


def test_the_default_query_scans_the_filled_table(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys)
    assert report["query"] == cli.SQLITE_QUERY
    assert "items" in report["query"]


def test_query_option_replaces_the_default_query(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--query", "SELECT name FROM items WHERE id = 500")
    assert report["query"] == "SELECT name FROM items WHERE id = 500"
    assert report["ops"] > 0 and report["errors"]["total"] == 0


def test_temporary_database_folder_is_removed_at_the_end(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folders: list[str] = []

    class RecordingDirectory(tempfile.TemporaryDirectory[str]):
        def __enter__(self) -> str:
            folders.append(self.name)
            return super().__enter__()

    monkeypatch.setattr(tempfile, "TemporaryDirectory", RecordingDirectory)
    run_json(capsys)
    assert len(folders) == 1
    assert not Path(folders[0]).exists()


def test_hold_ms_keeps_throughput_under_what_the_pool_size_allows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = run_json(capsys, "--workers", "4", "--pool-size", "2", "--hold-ms", "20")
    # Two connections each held >= 20 ms: at most 2 / 0.020 = 100 operations a second.
    assert 0 < report["throughput"] <= 110
    assert report["latency_ms"]["p50"] >= 20
    assert report["pool"]["waits"] > 0 and report["wait_ms"]["total"] > 0


def test_checkout_timeouts_are_counted_as_errors_by_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--workers", "6", "--pool-size", "1", "--hold-ms", "10", "--timeout", "0")
    report = run_json(capsys, *args)
    timeouts = report["errors"]["by_type"]["PoolTimeout"]
    assert timeouts > 0 and report["errors"]["total"] == timeouts
    assert report["pool"]["timeouts"] == timeouts


def test_progress_goes_to_stderr_as_plain_lines_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "PROGRESS_INTERVAL", 0.1)
    status, out, err = run(capsys, "--duration", "0.6")
    assert status == 0
    # Other lines may reach stderr too (the logging module's last-resort handler).
    lines = [line for line in err.splitlines() if "ops/s" in line]
    assert len(lines) >= 2
    assert all(line.endswith("ops/s") and "\r" not in line for line in lines)
    assert "ops/s" not in out.split("results")[0]  # the report itself starts clean


def test_quiet_shows_no_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "PROGRESS_INTERVAL", 0.1)
    status, _, err = run(capsys, *QUICK)
    assert status == 0 and err == ""


def test_report_shows_na_when_no_operation_succeeded() -> None:
    empty: dict[str, Any] = dict.fromkeys(("p50", "p95", "p99", "max"))
    pool = dict.fromkeys(POOL_STATS_KEYS - {"closes"}, 0)
    report = {
        "target": "t",
        "query": "q",
        "workers": 1,
        "pool_size": 1,
        "duration": 1.0,
        "elapsed": 1.0,
        "hold_ms": 0.0,
        "timeout": 0.0,
        "interrupted": False,
        "ops": 0,
        "throughput": 0.0,
        "latency_ms": empty,
        "wait_ms": {"total": 0.0, "mean": None, "p99": None, "max": None},
        "errors": {"total": 3, "by_type": {"PoolTimeout": 3}},
        "pool": {**pool, "closes": {"max_idle": 2}},
        "timings_ms": {k: {"count": 0, "p50": None, "p90": None, "p99": None} for k in TIMINGS},
    }
    text = format_report(report)
    assert "p50 n/a" in text and "mean n/a" in text
    assert "p90 n/a" in text and "(n=0)" in text
    assert "errors           3 (PoolTimeout 3)" in text
    assert "closes max_idle 2" in text


# -- usage and database errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--workers", "-3"], "--workers"),
        (["--workers", "0"], "--workers"),
        (["--workers", "2.5"], "--workers"),
        (["--pool-size", "0"], "--pool-size"),
        (["--duration", "0"], "--duration"),
        (["--duration", "soon"], "--duration"),
        (["--duration", "inf"], "--duration"),
        (["--hold-ms", "-1"], "--hold-ms"),
        (["--timeout", "nan"], "--timeout"),
        (["--url", "foo://localhost/db"], "unsupported database URL scheme 'foo'"),
        (["--url", "not a url"], "not a database URL"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    status, out, err = run(capsys, *args)
    assert status == 2
    assert out == ""
    assert_one_error_line(err, fragment)


def test_unknown_command_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert_one_error_line(capsys.readouterr().err, "frobnicate")


def test_missing_driver_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pg8000", None)  # makes "import pg8000" fail
    status, out, err = run(capsys, *QUICK, "--url", "postgresql+pg8000://u@127.0.0.1/db")
    assert status == 2 and out == ""
    assert_one_error_line(err, "pg8000", "not installed")


def test_unreachable_database_exits_1_with_one_clear_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, *QUICK, "--url", UNREACHABLE_URL)
    assert status == 1 and out == ""
    assert_one_error_line(err, "cannot connect to", "127.0.0.1:1", "OperationalError")


def test_failing_query_exits_1_before_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, *QUICK, "--query", "SELEC 1")
    assert status == 1 and out == ""
    assert_one_error_line(err, "the query failed", "syntax error")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "bench" in capsys.readouterr().out


def test_bench_help_documents_the_options_and_default_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--workers", "--pool-size", "--duration", "--query", "--url", "--hold-ms"):
        assert option in out
    assert "SELECT count(*)" in out


# -- passwords -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--url", f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:1/test"],
        ["--url", f"postgresql+psycopg2://postgres@127.0.0.1:1/test?password={PASSWORD}"],
        ["--url", f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/test"],
        ["--url", f"foo://root:{PASSWORD}@127.0.0.1/test"],
        [f"postgresql://postgres:{PASSWORD}@127.0.0.1/test"],  # --url forgotten
    ],
)
def test_password_is_never_shown_in_errors(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    status, out, err = run(capsys, *QUICK, *args)
    assert status in (1, 2)
    assert PASSWORD not in out + err
    assert_one_error_line(err)


# -- other ways in, and real servers ---------------------------------------------------


def test_python_m_dbapi_pool_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dbapi_pool", "bench", *QUICK, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ops"] > 0


@pytest.mark.postgres
def test_run_against_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--url", PG_URL, "--workers", "4", "--pool-size", "2")
    assert report["target"] == PG_URL and report["query"] == "SELECT 1"
    assert report["ops"] > 0 and report["errors"]["total"] == 0
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["pool"]["connects"] == 2 and report["pool"]["size"] == 2


@pytest.mark.postgres
def test_password_is_not_shown_in_a_postgresql_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = PG_URL.replace("postgres@", f"postgres:{PASSWORD}@")
    for fmt in ([], ["--json"]):
        status, out, err = run(capsys, *QUICK, "--url", url, *fmt)
        assert status == 0, err
        assert PASSWORD not in out + err
        assert "postgres:***@127.0.0.1:5432/test" in out
