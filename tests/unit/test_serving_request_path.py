"""The request path's plumbing without a trained bundle: per-request timings (the generator
keeps none of its own), the stage clock, and the sync wrapper's coroutine runner."""

import asyncio
import threading
import time

import numpy as np
import pytest

from recsys.candidates.generator import CandidateGenerator, SourceSpec
from recsys.candidates.types import Context, SourceResult, UserHistory
from recsys.serving.request_path import run_now
from recsys.serving.stages import StageClock


class Sleepy:
    """A source that takes ``seconds`` per answer (time.sleep lets the other thread run)."""

    name = "sleepy"

    def __init__(self, seconds: dict[int, float]) -> None:
        self.seconds = seconds  # by user index

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        time.sleep(self.seconds[user.user_idx])
        return SourceResult(self.name, np.array([1, 2]), np.ones(2, np.float32),
                            np.full(2, -1))


def test_concurrent_requests_get_their_own_source_timings():
    gen = CandidateGenerator({"slow": SourceSpec(Sleepy({0: 0.3, 1: 0.0}), quota=2)})
    state_before = dict(vars(gen))
    got: dict[int, dict[str, float]] = {}
    start = threading.Barrier(2)

    def request(user: int) -> None:
        timings: dict[str, float] = {}
        start.wait()
        gen.generate(UserHistory(user, np.empty(0, np.int64)), Context(), timings)
        got[user] = timings

    threads = [threading.Thread(target=request, args=(u,)) for u in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0]["slow"] >= 250 and got[1]["slow"] < 100  # each its own, not the last one's
    assert vars(gen) == state_before  # the shared generator holds no per-request state


def test_stage_clock_times_each_stage_since_the_last():
    clock = StageClock()
    assert clock.lap("features", "out") == "out"
    time.sleep(0.02)
    clock.lap("candidates", None)
    assert list(clock.ms) == ["features", "candidates"]
    assert clock.ms["features"] < 15 <= clock.ms["candidates"]


async def _never_suspends(x: int) -> int:
    async def ready(v: int) -> int:
        return v

    return await ready(x) + 1


def test_run_now_works_with_and_without_a_running_loop():
    assert run_now(_never_suspends(1)) == 2

    async def inside_a_loop() -> int:  # where asyncio.run would refuse
        return run_now(_never_suspends(41))

    assert asyncio.run(inside_a_loop()) == 42


class _Pending:
    """An awaitable that is not ready: awaiting it suspends the coroutine."""

    def __await__(self):
        yield


def test_run_now_refuses_a_coroutine_that_suspends():
    async def waits() -> None:
        await _Pending()

    with pytest.raises(RuntimeError, match="suspended"):
        run_now(waits())
