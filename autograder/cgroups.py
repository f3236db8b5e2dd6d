"""Memory and process limits for everything one student's kernel starts, through cgroups.

An rlimit holds per process: three children of 2.5 GiB each take 7.5 GiB past a 4 GiB
``RLIMIT_AS``, and ``RLIMIT_NPROC`` counts every process of the uid on the machine. A cgroup
holds for the whole group: the kernel, every child and daemon it forks, and what they write
to a tmpfs (``/tmp``, ``/dev/shm`` and the home of the sandbox are charged to it). When the
group is over its memory, the kernel's OOM killer stops one of its processes, not the grader.

Both cgroup versions are supported, because both are what machines have: v2 (one unified
tree, ``memory.max`` and ``pids.max``) on current distributions, v1 (one tree per controller,
``memory.limit_in_bytes``) on older hosts and many container platforms. The grader, as root,
creates one group per sandbox uid (uids are locked machine-wide, so names never collide),
the kernel's launcher joins it before it starts anything, and the grader kills what is left
in it and removes it after each student.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

GROUP = "efficient-dl-grader"
CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupUnavailable(RuntimeError):
    """No writable cgroup with memory and process limits here; the message says why."""


@dataclass(frozen=True)
class StudentCgroup:
    version: int
    folders: tuple[str, ...]  # v2: one folder; v1: one per controller (memory, pids)

    def join(self, pid: int | None = None) -> None:
        """Move ``pid`` (this process by default) into the group; its children follow."""
        for folder in self.folders:
            Path(folder, "cgroup.procs").write_text(f"{pid or os.getpid()}\n")

    def processes(self) -> set[int]:
        found = set()
        for folder in self.folders:
            try:
                found |= {int(line) for line in Path(folder, "cgroup.procs").read_text().split()}
            except FileNotFoundError:
                pass
        return found

    def kill(self, patience_seconds: float = 10.0) -> int:
        """SIGKILL every process in the group until none is left (a process may fork while a
        pass is killing); returns how many were killed."""
        kill_file = Path(self.folders[0], "cgroup.kill")
        killed, deadline = 0, time.monotonic() + patience_seconds
        while (pids := self.processes()) and time.monotonic() < deadline:
            if self.version == 2 and kill_file.exists():
                kill_file.write_text("1\n")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        return killed

    def peak_memory_bytes(self) -> int | None:
        names = ("memory.peak",) if self.version == 2 else ("memory.max_usage_in_bytes",)
        for folder in self.folders:
            for name in names:
                try:
                    return int(Path(folder, name).read_text())
                except (FileNotFoundError, ValueError):
                    pass
        return None

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass

    def to_json(self) -> dict:
        return {"version": self.version, "folders": list(self.folders)}

    @classmethod
    def from_json(cls, data: dict) -> StudentCgroup:
        return cls(data["version"], tuple(data["folders"]))


def own_cgroups(proc_self_cgroup: str | None = None) -> dict[str, str]:
    """{controller: path} of this process, from /proc/self/cgroup ('' is v2's unified tree)."""
    text = proc_self_cgroup if proc_self_cgroup is not None else Path("/proc/self/cgroup").read_text()
    found = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def create(name: str, memory_bytes: int, max_processes: int, root: Path = CGROUP_ROOT,
           proc_self_cgroup: str | None = None) -> StudentCgroup:
    """A fresh group ``name`` with these limits (an old one of that name is emptied and removed
    first); CgroupUnavailable, in words, where this machine has no writable memory and pids
    controllers."""
    own = own_cgroups(proc_self_cgroup)
    v1 = [(root / controller) for controller in ("memory", "pids")]
    if all((folder / "cgroup.procs").exists() for folder in v1):
        return _create_v1(name, memory_bytes, max_processes, root, own)
    if (root / "cgroup.controllers").exists():
        return _create_v2(name, memory_bytes, max_processes, root)
    raise CgroupUnavailable(f"no cgroup tree with memory and pids controllers under {root}")


def _fresh(folder: Path, version: int) -> None:
    if folder.exists():
        StudentCgroup(version, (str(folder),)).remove()
    folder.mkdir(parents=True)


def _create_v1(name: str, memory_bytes: int, max_processes: int, root: Path, own: dict[str, str]) -> StudentCgroup:
    # Below the grader's own group in each tree: a host's limits on the grader still hold.
    memory = root / "memory" / own.get("memory", "/").lstrip("/") / GROUP / name
    pids = root / "pids" / own.get("pids", "/").lstrip("/") / GROUP / name
    try:
        for folder in (memory, pids):
            _fresh(folder, 1)
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # swap counts too, where it is accounted
            (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (pids / "pids.max").write_text(str(max_processes))
    except OSError as error:
        raise CgroupUnavailable(f"cgroup v1 under {root} is not writable here ({error.strerror or error})") from error
    return StudentCgroup(1, (str(memory), str(pids)))


def _create_v2(name: str, memory_bytes: int, max_processes: int, root: Path) -> StudentCgroup:
    # A group of the grader's own at the top of the tree: a v2 group may hold processes or
    # children with controllers, not both, and the top is the one exception to that rule.
    parent = root / GROUP
    try:
        available = set((root / "cgroup.controllers").read_text().split())
        if not {"memory", "pids"} <= available:
            raise CgroupUnavailable(f"cgroup v2 here offers {sorted(available) or 'no controllers'}, "
                                    f"not memory and pids")
        enabled = set((root / "cgroup.subtree_control").read_text().split())
        if not {"memory", "pids"} <= enabled:
            (root / "cgroup.subtree_control").write_text("+memory +pids\n")
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids\n")
        folder = parent / name
        _fresh(folder, 2)
        (folder / "memory.max").write_text(str(memory_bytes))
        if (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")
        (folder / "pids.max").write_text(str(max_processes))
    except OSError as error:
        raise CgroupUnavailable(f"cgroup v2 under {root} does not let the grader make limited groups "
                                f"({error.strerror or error}; inside a container, the top of its tree "
                                f"holds processes)") from error
    return StudentCgroup(2, (str(folder),))
