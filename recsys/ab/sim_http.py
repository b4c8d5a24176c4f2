"""The simulator over HTTP: the same click model (``recsys.ab.simulator``) against a running
stack. Each visit is ``GET /v1/recommendations`` (the stack assigns the arm and logs the
exposure itself), and the user's clicks and plays go back through ``POST /v1/events`` with
the response's ``request_id``: the whole loop a client of the stack runs, end to end.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from recsys.ab.simulator import ClickModel, SimSettings


@dataclass
class HttpRun:
    requests: int = 0
    events_accepted: int = 0
    events_rejected: int = 0
    arms: dict[str, int] = field(default_factory=dict)  # "experiment:arm" -> responses
    errors: list[str] = field(default_factory=list)


def event_bodies(user_id: int, request_id: str, reactions: list, duration_s: float,
                 now_s: float) -> list[dict[str, Any]]:
    """The API events of one response's reactions (a click, then a play if played)."""
    out: list[dict[str, Any]] = []
    for r in reactions:
        context = {"surface": "home", "request_id": request_id}
        out.append({"event_id": uuid.uuid4().hex, "type": "click", "user_id": user_id,
                    "item_id": r.item_id, "timestamp": now_s, "context": context})
        if r.played:
            out.append({"event_id": uuid.uuid4().hex, "type": "play", "user_id": user_id,
                        "item_id": r.item_id, "timestamp": now_s, "context": context,
                        "watch_fraction": r.watch_fraction, "duration_s": duration_s})
    return out


def run_http(url: str, write_key: str, users: list[tuple[int, int]], visits: int,
             model: ClickModel, settings: SimSettings, item_index: dict[int, int],
             seed: int = 0, timeout_s: float = 30.0) -> HttpRun:
    """``visits`` home requests per user of ``users`` ((raw id, user index) pairs), in a
    random interleaving, each followed by the user's events."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.repeat(np.arange(len(users)), visits))
    out = HttpRun()
    headers = {"Authorization": f"Bearer {write_key}"}
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        for slot in order:
            user_id, user_idx = users[int(slot)]
            resp = client.get("/v1/recommendations",
                              params={"user_id": user_id, "n": settings.n})
            if resp.status_code != 200:
                out.errors.append(f"GET {resp.status_code}: {resp.text[:200]}")
                continue
            body = resp.json()
            out.requests += 1
            for exp in body.get("experiments", []):
                key = f"{exp['experiment']}:{exp['arm']}"
                out.arms[key] = out.arms.get(key, 0) + 1
            items = [int(i["item_id"]) for i in body["items"]]
            reactions = model.react(user_idx, items, item_index, rng)
            events = event_bodies(user_id, body["request_id"], reactions,
                                  settings.duration_s, time.time())
            if not events:
                continue
            posted = client.post("/v1/events", json=events, headers=headers)
            if posted.status_code != 202:
                out.errors.append(f"POST {posted.status_code}: {posted.text[:200]}")
                continue
            answer = posted.json()
            out.events_accepted += int(answer["accepted"])
            out.events_rejected += len(answer["rejected"])
    return out
