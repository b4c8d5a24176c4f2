"""The log's Parquet export: a partition per day, idempotent, incremental, and an export
killed with SIGKILL and re-run ends with the same partitions (by content hash)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recsys.events.export import DAY_MS, MANIFEST, export, read_partitions

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
START = 1_790_000_000_000 // DAY_MS * DAY_MS  # a UTC midnight


def stream(days: int, per_day: int) -> list[dict]:
    out = []
    for d in range(days):
        for i in range(per_day):
            ts = START + d * DAY_MS + i * 1_000
            out.append({"event_id": f"e{d}-{i}", "type": "play" if i % 3 else "rating",
                        "user_id": i % 17, "item_id": i % 29, "ts_ms": ts, "ingest_ms": ts,
                        "origin": "api", **({"watch_fraction": 0.5} if i % 3 else
                                            {"value": 4.0})})
    out.append({"event_id": "x", "type": "impression", "user_id": 1, "ts_ms": START,
                "ingest_ms": START, "origin": "serve", "items": [1, 2], "request_id": "x"})
    return out


def test_a_partition_per_day_written_once_and_again_only_when_it_changed(tmp_path):
    records = stream(3, 50)
    first = export(reversed(records), tmp_path)  # any log order: canonical within a day
    assert (first.partitions, first.rows, len(first.written)) == (3, 151, 3)
    again = export(records, tmp_path)
    assert again.written == [] and again.rows == 151  # a re-run writes nothing
    late = {**records[0], "event_id": "late", "ts_ms": START + 5, "ingest_ms": START + DAY_MS}
    third = export([*records, late], tmp_path)
    assert third.written == [time.strftime("%Y-%m-%d", time.gmtime(START // 1000))]
    table = read_partitions(tmp_path)
    assert table.num_rows == 152 and set(table["type"].to_pylist()) == {
        "play", "rating", "impression"}
    exposure = json.loads(next(r for r in table["record"].to_pylist() if '"items"' in r))
    assert exposure["items"] == [1, 2]  # every field survives, as JSON
    assert read_partitions(tmp_path, days=1).num_rows == 50
    assert read_partitions(tmp_path / "none").num_rows == 0


def test_an_export_killed_mid_run_and_re_run_gives_the_same_partitions(tmp_path):
    records = stream(40, 3000)
    source = tmp_path / "records.json"
    source.write_text(json.dumps(records))
    clean = tmp_path / "clean"
    export(records, clean)
    killed = tmp_path / "killed"
    code = ("import json, sys; from recsys.events.export import export; "
            f"export(json.load(open({str(source)!r})), {str(killed)!r})")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not (killed / MANIFEST).is_file() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    partial = json.loads((killed / MANIFEST).read_text())
    assert 0 < len(partial) < 40  # killed in the middle
    export(records, killed)
    assert json.loads((killed / MANIFEST).read_text()) == json.loads(
        (clean / MANIFEST).read_text())
    assert not list(killed.rglob("*.tmp"))
    for part in sorted(clean.glob("date=*")):
        a = pq.read_table(part / "events.parquet")
        b = pq.read_table(killed / part.name / "events.parquet")
        assert a.equals(b)


def test_the_stream_command_exports_the_log(tmp_path, capsys):
    from recsys.events.log import open_log
    from recsys.events.settings import EventsConfig
    from recsys.stream.cli import main

    live = tmp_path / "live"
    log = open_log(EventsConfig(path=str(live)))
    log.append(stream(2, 10)[:-1])
    log.close()
    out = tmp_path / "export"
    assert main(["export", "--out", str(out), f"serve.events.path={live}"]) == 0
    assert "20 records in 2 daily partitions" in capsys.readouterr().out
    assert main(["export", "--out", str(out), f"serve.events.path={live}"]) == 0
    assert "0 written (none changed)" in capsys.readouterr().out
    assert main(["export", "--out"]) == 2 and "needs a value" in capsys.readouterr().err
