"""The stream processor as a Ray actor of the serving stack: one process that Ray restarts if
it dies (``max_restarts=-1``); on restart it resumes from its last commit, and the store's
dedup makes the redelivered batch count once."""

from __future__ import annotations

import os
import threading
from typing import Any

import ray

from recsys.events.settings import EventsConfig

ACTOR_NAME = "recsys-stream-processor"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StreamActor:
    def __init__(self, cfg: EventsConfig, folder: str) -> None:
        from recsys.events.log import open_log
        from recsys.events.processor import StreamProcessor
        from recsys.events.store import open_store

        self.processor = StreamProcessor(open_log(cfg, folder), open_store(cfg, folder), cfg)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.processor.run, args=(self.stop_event,),
                                       name="stream-processor", daemon=True)
        self.thread.start()

    def stats(self) -> dict[str, Any]:
        return {**self.processor.stats.summary(), "pid": os.getpid(),
                "lag": self.processor.log.lag(self.processor.consumer)}

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)


def start_stream_actor(cfg: EventsConfig, folder: str):
    return StreamActor.options(name=ACTOR_NAME).remote(cfg, folder)
