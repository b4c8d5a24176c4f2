"""``python -m recsys.stream COMMAND [hydra overrides]``: the stream processor on its own, and
the operator's tools for the log and the store.

    run            apply the log to the store until Ctrl-C (what the serving stack runs as a
                   Ray actor; run this instead when the processor lives elsewhere)
    replay         rebuild the store from the whole log (it then equals the live store); readers
                   see it refill, so stop the stack's processor first
    backfill       load a dataset's interactions into the log (``data=ml-1m data.root=...``),
                   then apply them
    status         the log's size, the processor's lag, dead letters
    dead-letters   the newest refused and late events (``--limit N``)
    export         the log as Parquet, a partition per day of event time (``--out DIR``,
                   default ``<live folder>/export``): idempotent, a re-run writes only the
                   days whose events changed (``recsys.events.export``)

Where: ``serve.events`` (backend, path or redis_url), or the folder beside
``serve.artefacts_root``. A bad override or an unreachable backend ends with one sentence and
exit code 2.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time

from recsys import RecsysError
from recsys.config.compose import compose_or_refuse, plain
from recsys.events.log import LogUnavailable, open_log
from recsys.events.processor import StreamProcessor, replay
from recsys.events.store import open_store
from recsys.progress import progress_bar
from recsys.serving.settings import ServeConfig

COMMANDS = ("run", "replay", "backfill", "status", "dead-letters", "export")
log = logging.getLogger("recsys.stream")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    command = argv[0] if argv and not argv[0].startswith("-") and "=" not in argv[0] else "run"
    rest = argv[1:] if argv and argv[0] == command else argv
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; choose one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    options: dict[str, str] = {}
    for name in ("--limit", "--out"):
        if name in rest:
            at = rest.index(name)
            if at + 1 >= len(rest) or "=" in rest[at + 1]:
                print(f"error: {name} needs a value", file=sys.stderr)
                return 2
            options[name[2:]] = rest[at + 1]
            rest = rest[:at] + rest[at + 2:]
    if not options.get("limit", "20").isdigit():
        print(f"error: --limit must be a whole number, got {options['limit']!r}",
              file=sys.stderr)
        return 2
    try:
        cfg = compose_or_refuse(rest)
        serve_cfg: ServeConfig = plain(cfg.serve)
        return COMMAND_BODIES[command](cfg, serve_cfg, options)
    except (RecsysError, LogUnavailable, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def backends(serve_cfg: ServeConfig, rebuild: bool = False):
    folder = str(serve_cfg.live_folder())
    return open_log(serve_cfg.events, folder), open_store(serve_cfg.events, folder, rebuild)


def run(cfg, serve_cfg: ServeConfig, options: dict[str, str]) -> int:
    event_log, store = backends(serve_cfg)
    processor = StreamProcessor(event_log, store, serve_cfg.events)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("applying the log to the store (%s); Ctrl-C stops", serve_cfg.events.backend)
    worker = threading.Thread(target=processor.run, args=(stop,), daemon=True)
    worker.start()
    try:
        while worker.is_alive() and not stop.wait(10):
            s = processor.stats.summary()
            log.info("applied %d (duplicates %d, late %d), freshness p99 %s ms", s["applied"],
                     s["duplicates"], s["late"], s["freshness_p99_ms"])
    except KeyboardInterrupt:
        stop.set()
    worker.join(timeout=10)
    return 0


def replay_command(cfg, serve_cfg: ServeConfig, options: dict[str, str]) -> int:
    event_log, store = backends(serve_cfg, rebuild=True)
    started = time.perf_counter()
    n = replay(event_log, store, serve_cfg.events)
    print(f"replayed {n} records into the store in {time.perf_counter() - started:.1f} s")
    return 0


def backfill_command(cfg, serve_cfg: ServeConfig, options: dict[str, str]) -> int:
    from recsys.data import load_dataset
    from recsys.events.backfill import backfill

    data = dict(plain(cfg.data))
    dataset = load_dataset(**data)
    event_log, store = backends(serve_cfg)
    frame = dataset.interactions
    with progress_bar(total=len(frame), desc=f"backfill {data['name']}", unit="event") as bar:
        stored, known = backfill(event_log, frame, data["name"], bar)
    StreamProcessor(event_log, store, serve_cfg.events).drain(timeout_s=3600)
    print(f"backfilled {stored} events from {data['name']} ({known} already in the log); "
          "the store has them")
    return 0


def status(cfg, serve_cfg: ServeConfig, options: dict[str, str]) -> int:
    event_log, _ = backends(serve_cfg)
    print(json.dumps({"backend": str(serve_cfg.events.backend), "records": event_log.count(),
                      "processor_lag": event_log.lag("processor"),
                      "dead_letters": event_log.dead_letter_count()}))
    return 0


def dead_letters(cfg, serve_cfg: ServeConfig, options: dict[str, str]) -> int:
    event_log, _ = backends(serve_cfg)
    for d in event_log.dead_letters(int(options.get("limit", 20))):
        print(json.dumps({"reason": d.reason, "detail": d.detail, "event_id": d.event_id,
                          "received_ms": d.received_ms, "payload": d.payload}))
    return 0


def export_command(cfg, serve_cfg: ServeConfig, options: dict[str, str]) -> int:
    from pathlib import Path

    from recsys.events.export import export

    out = Path(options.get("out") or serve_cfg.live_folder() / "export")
    event_log, _ = backends(serve_cfg)
    records = (entry.record for batch in event_log.scan() for entry in batch)
    done = export(records, out)
    print(f"exported {done.rows} records in {done.partitions} daily partitions to {out}: "
          f"{len(done.written)} written ({', '.join(done.written) or 'none changed'}) in "
          f"{done.seconds:.1f} s")
    return 0


COMMAND_BODIES = {"run": run, "replay": replay_command, "backfill": backfill_command,
                  "status": status, "dead-letters": dead_letters, "export": export_command}
