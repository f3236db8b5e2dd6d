"""Run a student's kernel with less power than the grader: its own user, no network,
nothing of the course's secrets in sight, and limits on memory, CPU time and file size.

nbgrader starts kernels by kernel-spec name ("python3"). The class grader writes, per
student, a kernel spec named ``python3`` whose command is this module's ``launch``: it
applies what the machine allows, then ``exec``s the real ipykernel. Kernels talk to
nbgrader over Unix-domain sockets (``KernelManager.transport = "ipc"``), which work across
network namespaces, so the kernel can live in a namespace with no network at all.

What each measure needs, and what happens without it:

- own user (a uid from 61000 up, locked for the run by ``SandboxUsers``): the grader runs as root. Otherwise
  the kernel runs as the grader's user.
- no network (a new, empty network namespace): root, or unprivileged user namespaces.
- hidden paths (a new mount namespace with empty tmpfs over ``solutions/``,
  the gradebook, the other students' folders): root. Temporary files go to the kernel's own
  home (``TMPDIR``).
- memory (RLIMIT_AS), CPU time (RLIMIT_CPU), file size (RLIMIT_FSIZE), no core files:
  everywhere on Linux and macOS.

``probe()`` tells which of these work here; the grader prints what is missing once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

SANDBOX_UID_BASE = 61_000  # first of the uids kernels run as; see SandboxUsers
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_BIND = 0x4000, 0x40000, 0x2, 0x4, 0x1000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 4 * 2**30  # address space: TensorFlow and a small CNN fit in 4 GiB
    cpu_seconds: int = 900  # per kernel, all cells together
    file_bytes: int = 512 * 2**20  # largest file a kernel may write
    cell_seconds: int = 300  # nbgrader's Execute.timeout
    notebook_seconds: int = 1_200  # one student's whole autograde, wall clock


@dataclass(frozen=True)
class Capabilities:
    separate_user: bool
    no_network: bool
    hidden_paths: bool
    resource_limits: bool
    missing: tuple[str, ...] = field(default_factory=tuple)

    def notices(self) -> list[str]:
        return list(self.missing)


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                           data.encode() if data else None)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _can_in_child(flags: int) -> bool:
    """Whether unshare(flags) works here, tried in a throw-away child process."""
    if not sys.platform.startswith("linux"):
        return False
    code = (f"import autograder.isolation as i; i._unshare({flags})")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True,
                               cwd=Path(__file__).resolve().parents[1])
    return completed.returncode == 0


def probe() -> Capabilities:
    """What this machine lets the grader do to a student's kernel."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    no_network = _can_in_child(CLONE_NEWNET)
    hidden_paths = is_root and _can_in_child(CLONE_NEWNS)
    missing = []
    if not is_root:
        missing.append("kernels run as your own user (start the grader as root to run them as a separate, "
                       "unprivileged user)")
    if not no_network:
        missing.append("kernels can reach the network (this machine does not allow a separate network namespace)")
    if not hidden_paths:
        missing.append("kernels can read what your user can read, solutions/ and the gradebook included "
                       "(hiding them needs root and mount namespaces)")
    if not hasattr(resource, "RLIMIT_AS"):
        missing.append("no memory limit on this system")
    return Capabilities(separate_user=is_root, no_network=no_network, hidden_paths=hidden_paths,
                        resource_limits=hasattr(resource, "RLIMIT_AS"), missing=tuple(missing))


@dataclass(frozen=True)
class SandboxPlan:
    """Everything ``launch`` needs, written into the kernel spec as one JSON argument."""
    limits: dict
    uid: int | None
    hide: list[str]  # folders to cover with an empty tmpfs, files to replace by /dev/null
    no_network: bool
    home: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def write_kernel_spec(folder: Path, plan: SandboxPlan) -> Path:
    """A kernel spec named python3 under ``folder``/kernels: put ``folder`` first on JUPYTER_PATH."""
    spec_dir = folder / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "autograder.isolation", plan.to_json(), "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sandboxed grading)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def _apply_limits(limits: dict) -> None:
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_CPU", limits["cpu_seconds"]),
                        ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_CORE", 0)):
        if hasattr(resource, name):
            resource.setrlimit(getattr(resource, name), (value, value))


def _hide(paths: list[str]) -> None:
    _unshare(CLONE_NEWNS)
    _mount("none", "/", None, MS_REC | MS_PRIVATE)  # our mounts stay in this namespace
    for path in paths:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0555")
        elif os.path.isfile(path):  # a file (the gradebook): an empty one in its place
            _mount("/dev/null", path, None, MS_BIND)


def untraversable_ancestor(path: str) -> str | None:
    """The outermost folder above ``path`` that other users cannot enter (e.g. /root, 0700)."""
    parts = Path(path).parts
    for depth in range(2, len(parts) + 1):
        folder = str(Path(*parts[:depth]))
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _expose(paths: list[str]) -> None:
    """Make ``paths`` reachable for the sandbox user where a parent folder is private (Python
    installed under /root by pyenv, say): in this mount namespace only, the private parent
    becomes an empty, enterable tmpfs with just ``paths`` bound back into it."""
    for path in paths:
        path = os.path.realpath(path)
        ancestor = untraversable_ancestor(path)
        if ancestor is None:
            continue
        handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0711")
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
        finally:
            os.close(handle)


def _private_connection_file(argv: list[str], uid: int | None) -> list[str]:
    """The kernel's connection file is root's (mode 600): hand the kernel its own copy."""
    if uid is None or "-f" not in argv:
        return argv
    index = argv.index("-f") + 1
    original = Path(argv[index])
    copy = original.with_name(original.stem + "-sandbox.json")
    shutil.copyfile(original, copy)
    os.chown(copy, uid, uid)
    os.chmod(copy, 0o600)
    return argv[:index] + [str(copy)] + argv[index + 1:]


def launch(plan_json: str, kernel_argv: list[str]) -> None:
    """Become the sandboxed kernel: called as the kernel spec's command, never returns."""
    plan = json.loads(plan_json)
    kernel_argv = _private_connection_file(kernel_argv, plan["uid"])
    cwd = os.getcwd()  # the notebook's folder: kept even where its parents get hidden
    if plan["no_network"]:
        _unshare(CLONE_NEWNET)
    if plan["hide"]:
        _hide(plan["hide"])
        if plan["uid"] is not None:
            import efficient_dl  # an editable install lives in the repository's src/

            _expose([sys.base_prefix, sys.prefix, str(Path(efficient_dl.__file__).resolve().parents[1])])
    os.chdir(cwd)
    _apply_limits(plan["limits"])
    if plan["uid"] is not None:
        os.setgroups([])
        os.setgid(plan["uid"])
        os.setuid(plan["uid"])
    libc = _libc()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the kernel dies with its grader
    environment = kernel_environment(os.environ, plan["home"])
    os.execve(kernel_argv[0], kernel_argv, environment)


# What a kernel inherits from the grader: an allow-list, never the grader's whole environment
# (an instructor's shell holds tokens and passwords). Sizes, threads and the run profile pass.
KERNEL_ENVIRONMENT = ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "LANG", "LC_ALL",
                      "LC_CTYPE", "TZ", "MPLBACKEND", "PYTHONHASHSEED")
KERNEL_ENVIRONMENT_PREFIXES = ("EFFICIENT_DL_", "NBGRADER_", "TF_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "KERAS_",
                               "JAX_", "XLA_", "CUDA_VISIBLE_DEVICES")


def kernel_environment(grader_environment, home: str) -> dict[str, str]:
    kept = {name: value for name, value in grader_environment.items()
            if name in KERNEL_ENVIRONMENT or name.startswith(KERNEL_ENVIRONMENT_PREFIXES)}
    # The kernel's own home and temporary folder: nothing it writes lands in a shared /tmp.
    return {**kept, "HOME": home, "TMPDIR": home, "MPLCONFIGDIR": os.path.join(home, ".matplotlib")}


class SandboxUsers:
    """Sandbox uids held for this run, one per worker slot, locked machine-wide.

    Two graders on one machine (two chapters, two instructors, a test and a real run) must
    never share a uid: each kills its uid's leftover processes after every notebook."""

    def __init__(self, count: int, lock_dir: str | os.PathLike | None = None):
        import fcntl
        import tempfile

        folder = Path(lock_dir or tempfile.gettempdir())
        self._handles, self.uids = [], []
        uid = SANDBOX_UID_BASE
        while len(self.uids) < count:
            if uid >= SANDBOX_UID_BASE + 4_000:
                raise RuntimeError("no free sandbox uid: too many graders running on this machine")
            handle = open(folder / f"efficient-dl-sandbox-uid-{uid}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
            else:
                self._handles.append(handle)
                self.uids.append(uid)
            uid += 1

    def release(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles, self.uids = [], []


def die_with_parent() -> None:
    """For preexec_fn: the child is killed when the grader dies (even by kill -9)."""
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def kill_user_processes(uid: int, passes: int = 100) -> int:
    """Stop everything a sandbox user still runs (a kernel that outlived its grader, a daemon
    it forked). A process may fork while one pass is killing, so passes repeat until one finds
    nothing left; returns how many processes were killed."""
    killed = 0
    for _ in range(passes):
        found = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        os.kill(int(entry.name), signal.SIGKILL)
                        found += 1
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    pass
        if not found:
            return killed
        killed += found
    return killed


def reclaim(folder: str | os.PathLike) -> list[str]:
    """Take back a folder a sandboxed kernel could write in, before root writes there again:
    every link, FIFO, socket or device in it is removed (root must never follow a path a
    student made), everything else becomes root's and read-only to others. Run it only once
    nothing of the sandbox user runs any more. Returns what was removed, relative to ``folder``."""
    removed = []
    for current, folders, files in os.walk(folder, followlinks=False):
        for name in folders + files:
            path = os.path.join(current, name)
            status = os.lstat(path)
            if stat.S_ISDIR(status.st_mode) or stat.S_ISREG(status.st_mode):
                os.chown(path, 0, 0, follow_symlinks=False)
                os.chmod(path, 0o755 if stat.S_ISDIR(status.st_mode) else 0o644)
            else:
                os.unlink(path)
                removed.append(os.path.relpath(path, folder))
        folders[:] = [name for name in folders if os.path.isdir(os.path.join(current, name))
                      and not os.path.islink(os.path.join(current, name))]
    os.chown(folder, 0, 0)
    os.chmod(folder, 0o755)
    return removed


if __name__ == "__main__":
    separator = sys.argv.index("--")
    launch(sys.argv[1], sys.argv[separator + 1:])
