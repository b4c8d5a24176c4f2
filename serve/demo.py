"""``python -m serve.demo [overrides]``: what ``make run`` ends with. Start the stack on the
published artefacts, ask every surface for a sample user and for a brand-new one over HTTP,
print the answers with their reasons, and stop the stack.
"""

import logging
import sys

import httpx

from serve.cli import run_command

NEW_USER = 10**12  # an id no dataset uses: the cold-start path


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
    print("\nstack stopped")


if __name__ == "__main__":
    sys.exit(run_command(demo, sys.argv[1:], defaults=("serve.port=0",),
                         log_level=logging.WARNING))
