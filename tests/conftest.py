"""Test-wide rules: offline data, the fast profile, and no connection off this machine.

The environment variables are set at import time so that every process the tests start
(nbgrader, notebook kernels) inherits them.
"""
import ipaddress
import os
import socket
import tempfile

import pytest

os.environ["EFFICIENT_DL_DATA_SOURCE"] = "sample"
os.environ["EFFICIENT_DL_PROFILE"] = "fast"
os.environ.pop("EFFICIENT_DL_DATA_MIRROR", None)
# Models the notebooks train and cache (e.g. the baseline CNN) start from nothing in every
# test run, as on a fresh machine, and are shared by all the run's workers and kernels.
_run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
os.environ["EFFICIENT_DL_CACHE"] = os.path.join(tempfile.gettempdir(), f"efficient-dl-test-cache-{_run_id}")

_real_connect = socket.socket.connect


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes) or not isinstance(host, str) or host.startswith("/"):
        return True  # Unix-domain sockets (kernels may use them) never leave the machine
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already use the network


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OSError(f"tests must not reach the network (tried {address!r})")
        return _real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
