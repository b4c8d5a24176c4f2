"""Launchers for the real components (Triton, Ray) on 127.0.0.1.

One place knows how to start them with free ports, quiet logs and a guaranteed teardown, so the
doctor, the integration tests and the serving layer don't each grow their own half-working copy.
Heavy libraries are imported by the submodules only:
``from recsys.runtime.tritonserver import tritonserver``.
"""

from recsys.runtime.ports import free_port, free_ports, port_is_open

__all__ = ["free_port", "free_ports", "port_is_open"]
