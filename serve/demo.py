"""``python -m serve.demo [overrides]``: what ``make run`` ends with. Start the stack on the
published artefacts, ask every surface for a sample user and for a brand-new one over HTTP,
post plays to ``/v1/events`` and show both users' home rows change, and stop the stack.

The demo adds a one-time write key for the stack it starts (``RECSYS_API_KEYS``), so it needs
no configured key; a real deployment sets its own (README, "Live events").
"""

import logging
import os
import secrets
import sys
import time

import httpx

from serve.cli import run_command

NEW_USER = 10**12 + secrets.randbelow(10**9)  # no dataset uses it, and no earlier demo run


def show(title: str, res: httpx.Response) -> None:
    print(f"\n{title}  [{res.status_code}]")
    body = res.json()
    if res.status_code != 200:
        print(f"  {body['detail']}")
        return
    flags = f"  degraded: {', '.join(body['degraded'])}" if body["degraded"] else ""
    print(f"  version {body['version']}{'  (cold start)' if body['cold_start'] else ''}{flags}")
    for rank, item in enumerate(body["items"], 1):
        print(f"  {rank:2d}. {item['title']}  ({item['score']:.3f})  {item['reason']}")


def demo(cfg) -> None:
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle
    from serve.stack import running_stack

    n = int(cfg.output.top_n)
    bundle = load_bundle(*ArtefactStore(cfg.serve.artefacts_root or "").resolve(
        cfg.serve.version))
    counts = bundle.events["user_idx"].value_counts()
    user = cfg.output.sample_user or int(bundle.user_ids[int(counts.index[len(counts) // 2])])
    history = bundle.events[bundle.events["user_idx"] == list(bundle.user_ids).index(user)]
    last = int(bundle.item_ids[int(history.sort_values("timestamp")["item_idx"].iloc[-1])])
    last_title = bundle.items["title"].iloc[list(bundle.item_ids).index(last)]
    with running_stack(cfg.serve) as stack, httpx.Client(base_url=stack.url,
                                                         timeout=60) as client:
        print(f"stack up on {stack.url} (artefact version {stack.version})")
        rec = "/v1/recommendations"
        show(f"home, user {user}", client.get(rec, params={"user_id": user, "n": n}))
        show(f"search 'space adventure', user {user}", client.get(rec, params={
            "user_id": user, "surface": "search", "query": "space adventure", "n": n}))
        show(f"post-play after '{last_title}', user {user}", client.get(rec, params={
            "user_id": user, "surface": "post_play", "item_id": last, "n": n}))
        show("home, a brand-new user", client.get(rec, params={"user_id": NEW_USER, "n": n}))
        show(f"post-play after '{last_title}', a brand-new user", client.get(rec, params={
            "user_id": NEW_USER, "surface": "post_play", "item_id": last, "n": n}))
        if stack.events is not None:
            live_events(client, user, n)
    print("\nstack stopped")


def live_events(client: httpx.Client, user: int, n: int) -> None:
    """Both users play titles (``POST /v1/events``); their next home rows leave them out and
    follow from them: the stream processor applied the plays to the shared store."""
    rec, headers = "/v1/recommendations", {"Authorization": f"Bearer {DEMO_KEY}"}
    shown = client.get(rec, params={"user_id": user, "n": n}).json()["items"]
    played = [item for item in shown[:2]]
    now = time.time()
    events = [{"event_id": f"demo-{secrets.token_hex(6)}", "type": "play", "user_id": who,
               "item_id": item["item_id"], "timestamp": now, "watch_fraction": 0.95,
               "context": {"surface": "home"}}
              for who in (user, NEW_USER) for item in played]
    res = client.post("/v1/events", json=events, headers=headers)
    print(f"\nPOST /v1/events: users {user} and {NEW_USER} play "
          f"{' and '.join(repr(i['title']) for i in played)}  [{res.status_code}] {res.json()}")
    deadline = time.monotonic() + 10  # read-your-writes: the processor applies within ms
    while time.monotonic() < deadline:
        after = client.get(rec, params={"user_id": user, "n": n})
        if not {i["item_id"] for i in played} & {i["item_id"] for i in after.json()["items"]}:
            break
        time.sleep(0.05)
    show(f"home, user {user}, after those plays", after)
    show("home, the brand-new user, after those plays", client.get(rec, params={
        "user_id": NEW_USER, "n": n}))


DEMO_KEY = secrets.token_urlsafe(24)

if __name__ == "__main__":
    keys = os.environ.get("RECSYS_API_KEYS")
    os.environ["RECSYS_API_KEYS"] = ",".join(filter(None, [keys, f"{DEMO_KEY}:write"]))
    sys.exit(run_command(demo, sys.argv[1:], defaults=("serve.port=0",),
                         log_level=logging.WARNING))
