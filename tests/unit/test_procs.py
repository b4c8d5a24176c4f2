"""/proc readers the teardown and the serving benchmark share."""

import os
import subprocess
import sys
import time

from recsys.runtime.procs import child_pids, cpu_seconds


def test_cpu_seconds_counts_the_process_and_its_running_children():
    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", spin + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(child.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(child.pid) >= 0.3  # its own spin
        assert child.pid in child_pids(os.getpid())
        assert cpu_seconds(os.getpid()) >= cpu_seconds(child.pid)  # the parent includes it
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) == 0.0  # exited: nothing to read
