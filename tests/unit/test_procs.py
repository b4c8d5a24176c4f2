"""Process helpers the Triton teardown and the serving benchmark share, on real processes."""

import os
import subprocess
import sys
import time

import psutil

from recsys.runtime.procs import children, cpu_seconds, reap, running

# Ignores SIGTERM and SIGINT like the orphaned Python-backend stubs teardown has to kill.
STUBBORN = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")


def _stubborn(tag: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", STUBBORN, tag], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "ready"  # signal handlers are in place
    return child


def test_cpu_seconds_counts_the_process_and_its_running_children():
    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", spin + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(child.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(child.pid) >= 0.3  # its own spin
        assert child.pid in [p.pid for p in children(os.getpid())]
        assert cpu_seconds(os.getpid()) >= cpu_seconds(child.pid)  # the parent includes it
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) == 0.0  # exited: nothing to read


def test_children_picks_by_argv_marker():
    wanted, other = _stubborn("marker-wanted"), _stubborn("marker-other")
    try:
        assert [p.pid for p in children(os.getpid(), marker="marker-wanted")] == [wanted.pid]
    finally:
        for child in (wanted, other):
            child.kill()
            child.wait()
    assert children(wanted.pid) == []  # an exited pid has no children to list


def test_reap_kills_a_process_that_ignores_sigterm_and_waits_until_it_is_gone():
    child = _stubborn("reap-me")
    proc = psutil.Process(child.pid)
    child.terminate()  # ignored: it keeps running
    start = time.monotonic()
    killed = reap([proc], grace_s=0.5)
    assert [p.pid for p in killed] == [child.pid]
    assert time.monotonic() - start >= 0.5  # it had its grace period first
    assert not running(proc)
    assert proc.returncode == -9  # SIGKILL (psutil collected its exit status)
    child.wait(timeout=5)


def test_reap_leaves_processes_that_exit_in_time_alone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    proc = psutil.Process(child.pid)
    assert reap([proc], grace_s=10) == []
    assert proc.returncode == 0  # its own exit
    child.wait(timeout=5)


def test_a_zombie_counts_as_exited():
    """An exited process its parent has not collected yet still has a pid; it must not be
    reported running (nor be 'killed')."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    proc = psutil.Process(child.pid)
    deadline = time.monotonic() + 20
    while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.status() == psutil.STATUS_ZOMBIE
    assert not running(proc)
    assert reap([proc], grace_s=0.1) == []
    child.wait(timeout=5)
