"""Kernels reached over Unix-domain sockets in a folder of their own.

jupyter_client's default TCP transport picks five free ports, releases them, and lets the
kernel bind them a moment later. Two kernels starting at the same time (two graders, two
test workers) can pick the same port, and one of them dies with "Address already in use":
a known race (jupyter_client #487, papermill #511). Sockets in a private folder cannot
collide, and never touch the network.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets import CaselessStrEnum, default


class PrivateSocketKernelManager(AsyncKernelManager):
    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    _socket_folder: str | None = None

    @default("ip")
    def _socket_prefix_in_a_private_folder(self) -> str:
        if self.transport != "ipc":
            return super()._ip_default()
        # Short on purpose: a Unix socket path must stay under 108 bytes.
        self._socket_folder = tempfile.mkdtemp(prefix="edl-kernel-")
        return os.path.join(self._socket_folder, "k")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._socket_folder:
            shutil.rmtree(self._socket_folder, ignore_errors=True)
            self._socket_folder = None

    cleanup_resources = run_sync(_async_cleanup_resources)
