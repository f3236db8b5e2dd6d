"""Run a student's kernel with less power than the grader, in a sandbox built on bubblewrap.

nbgrader starts kernels by kernel-spec name ("python3"). The class grader writes, per
student, a kernel spec named ``python3`` whose command is this module's ``launch``: it joins
the student's cgroup, then ``exec``s bubblewrap (``bwrap``, what Flatpak uses), which starts
the real ipykernel in a sandbox built from an allow-list:

- a fresh mount namespace holding only what a kernel needs, read-only: the system's
  ``/usr``, a few files of ``/etc``, the Python environment, the course's helper package,
  the model cache and the data mirror. No course folder, submission, gradebook, ledger,
  log, ``solutions/``, ``tests/`` or ``.git`` exists in it: they are not hidden, they were
  never put there. The notebook nbgrader executes is not there either (its hidden tests
  reach the kernel one cell at a time, over the kernel's socket).
- a private ``/tmp``, ``/dev/shm`` and home, each a small tmpfs that vanishes with the kernel;
  its own ``/proc`` in a new PID namespace (no other process, no grader command line in
  sight); ``--die-with-parent``, and the PID namespace ends with the kernel: every process
  the student started dies with it, before anything is read back.
- a new network namespace with only a loopback (kernels talk to nbgrader over Unix
  sockets, bound into the sandbox), and an environment built from an allow-list.
- its own uid (from 61000 up, locked machine-wide by ``SandboxUsers``) with no capabilities,
  and per-student limits on memory and processes through ``autograder.cgroups``; per-process
  rlimits only for CPU time, file size and core files.

Where bubblewrap, root or cgroups are missing, ``probe()`` says what, in words. The class
grader then refuses to run, unless the instructor accepts a weaker sandbox explicitly: the
kernel gets what the machine allows (its own uid, no network, a deny-list of hidden paths,
rlimits), as the ``weaker_*`` functions below do.
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
import time
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
    max_processes: int = 512  # processes and threads of one student (TensorFlow starts dozens of threads)
    scratch_bytes: int = 512 * 2**20  # each of the sandbox's /tmp, /dev/shm and home (charged to its memory)


@dataclass(frozen=True)
class Capabilities:
    separate_user: bool
    no_network: bool
    hidden_paths: bool  # nothing of the course's in the kernel's sight (allow-list, or the weaker deny-list)
    resource_limits: bool
    missing: tuple[str, ...] = field(default_factory=tuple)
    bubblewrap: str | None = None  # the bwrap that works here
    cgroups: int | None = None  # the cgroup version that gives per-student limits here
    cgroup_problem: str | None = None

    @property
    def complete(self) -> bool:
        """Every layer the class grader is built for: root, bubblewrap, cgroups."""
        return self.separate_user and self.bubblewrap is not None and self.cgroups is not None

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
    code = (f"import autograder.sandbox as i; i._unshare({flags})")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True,
                               cwd=Path(__file__).resolve().parents[1])
    return completed.returncode == 0


def probe(cgroup_root: Path | None = None) -> Capabilities:
    """What this machine lets the grader do to a student's kernel, each missing layer in words."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    bubblewrap = _working_bubblewrap(is_root)
    cgroup_version, cgroup_problem = _working_cgroups(cgroup_root) if is_root else (None, "needs root")
    no_network = bubblewrap is not None or _can_in_child(CLONE_NEWNET)
    hidden_paths = bubblewrap is not None or (is_root and _can_in_child(CLONE_NEWNS))
    missing = []
    if not is_root:
        missing.append("kernels run as your own user (start the grader as root to run them as a separate, "
                       "unprivileged user)")
    if bubblewrap is None:
        missing.append("bubblewrap (bwrap) is not installed or cannot make namespaces here: kernels share this "
                       "machine's processes, /tmp and /dev/shm (install it: apt-get install bubblewrap)")
    if cgroup_version is None:
        missing.append(f"no per-student memory and process limits through cgroups ({cgroup_problem}): only "
                       f"per-process limits apply")
    if not no_network:
        missing.append("kernels can reach the network (this machine does not allow a separate network namespace)")
    if not hidden_paths:
        missing.append("kernels can read what your user can read, solutions/ and the gradebook included "
                       "(hiding them needs bubblewrap, or root and mount namespaces)")
    return Capabilities(separate_user=is_root, no_network=no_network, hidden_paths=hidden_paths,
                        resource_limits=hasattr(resource, "RLIMIT_AS"), missing=tuple(missing),
                        bubblewrap=bubblewrap, cgroups=cgroup_version, cgroup_problem=cgroup_problem)


def _working_bubblewrap(is_root: bool) -> str | None:
    found = shutil.which("bwrap")
    if found is None or (is_root and shutil.which("setpriv") is None):
        return None
    command = [found, *_NAMESPACES, *([] if is_root else ["--unshare-user"]), "--ro-bind", "/", "/", "true"]
    try:
        completed = subprocess.run(command, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found if completed.returncode == 0 else None


def _working_cgroups(root: Path | None) -> tuple[int | None, str | None]:
    from autograder import cgroups

    try:
        group = cgroups.create(f"probe-{os.getpid()}", 2**30, 64, **({"root": root} if root else {}))
    except cgroups.CgroupUnavailable as error:
        return None, str(error)
    group.remove()
    return group.version, None


# Namespaces of every bubblewrap sandbox. Not --unshare-all: it makes a user namespace too,
# in which root could not become the sandbox uid.
_NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent")
# The kernel is the PID namespace's first process (when it ends, the kernel of the OS kills
# everything else in the namespace), and the one that gets the SIGINT nbclient sends to
# interrupt a cell that ran over its time: bubblewrap's own processes must not.
_KERNEL_IS_PID_1 = ("--as-pid-1",)
# What a kernel needs of /etc: the loader's cache, names of users and time zones. Not the rest
# (an instructor's machine keeps credentials there).
ETC_ALLOWED = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "localtime",
               "timezone", "alternatives", "fonts", "mime.types", "os-release")
SYS_ALLOWED = ("/sys/devices/system/cpu", "/sys/devices/system/node")
SANDBOX_HOME = "/home/student"


@dataclass(frozen=True)
class SandboxPlan:
    """Everything ``launch`` needs, written into the kernel spec as one JSON argument."""
    limits: dict
    uid: int | None
    hide: list[str]  # weaker sandbox only: folders to cover with an empty tmpfs, files to replace by /dev/null
    no_network: bool
    home: str  # the kernel's home: SANDBOX_HOME in bubblewrap, a folder on disk in the weaker sandbox
    bubblewrap: str | None = None
    read_only: list[str] = field(default_factory=list)  # bound at the same path, read-only
    read_write: list[str] = field(default_factory=list)  # bound at the same path (the socket folder)
    cgroup: dict | None = None  # autograder.cgroups.StudentCgroup.to_json()
    runtime: str | None = None  # the kernel's own copy of its connection file goes here (the grader removes it)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def write_kernel_spec(folder: Path, plan: SandboxPlan) -> Path:
    """A kernel spec named python3 under ``folder``/kernels: put ``folder`` first on JUPYTER_PATH."""
    spec_dir = folder / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "autograder.sandbox", plan.to_json(), "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sandboxed grading)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def python_paths() -> list[str]:
    """What a kernel needs to run this Python: the environment, the interpreter it was made
    from, and the course's helper package where it is installed in editable mode."""
    import efficient_dl

    package_parent = str(Path(efficient_dl.__file__).resolve().parents[1])
    paths = [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    if not any(Path(package_parent).is_relative_to(p) for p in paths):
        paths.append(package_parent)
    return sorted(set(paths))


def bubblewrap_command(plan: dict, kernel_argv: list[str]) -> list[str]:
    """The bwrap command line that runs ``kernel_argv`` in the allow-list sandbox."""
    scratch = str(plan["limits"]["scratch_bytes"])
    command = [plan["bubblewrap"], *_NAMESPACES, *_KERNEL_IS_PID_1]
    if plan["uid"] is None:
        command.append("--unshare-user")  # no root: bubblewrap needs a user namespace of its own
    # bubblewrap makes the folders above a mount point 0700: the sandbox uid could not walk to
    # /etc, its home, Python or its sockets. Each is made first, enterable and empty but for
    # what is mounted in it.
    made = {"/"}

    def parents_of(path: str) -> list[str]:
        added = []
        for folder in reversed(Path(path).parents):
            if str(folder) not in made and not Path(folder).is_relative_to("/usr"):  # /usr is bound whole
                added += ["--perms", "0755", "--dir", str(folder)]
                made.add(str(folder))
        return added

    command += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = f"/{name}"
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    for name in ETC_ALLOWED:
        command += parents_of(f"/etc/{name}") + ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    command += ["--proc", "/proc", "--dev", "/dev"]
    made |= {"/proc", "/dev"}
    for name in SYS_ALLOWED:  # read-only: what TensorFlow and oneDNN read to size their thread pools
        command += parents_of(name) + ["--ro-bind-try", name, name]
    for device in sorted(Path("/dev").glob("nvidia*")):  # a GPU, where the grading machine has one
        command += ["--dev-bind-try", str(device), str(device)]
    for target in ("/tmp", "/dev/shm", SANDBOX_HOME):
        command += parents_of(target) + ["--perms", "01777", "--size", scratch, "--tmpfs", target]
        made.add(target)
    for path, kind in [(p, "--ro-bind") for p in plan["read_only"]] + [(p, "--bind") for p in plan["read_write"]]:
        if kind == "--ro-bind" and Path(path).is_relative_to("/usr"):
            continue  # a Python of the system's: in sight already
        command += parents_of(path) + [kind, path, path]
    command += ["--chdir", SANDBOX_HOME]
    if plan["uid"] is not None:
        # bubblewrap runs as root and keeps what it needs to hand over to the sandbox uid, which
        # then holds no capability at all and can gain none (no_new_privs).
        command += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
                    "--", shutil.which("setpriv") or "setpriv", f"--reuid={plan['uid']}", f"--regid={plan['uid']}",
                    "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
    return command + ["--", *kernel_argv]


def _apply_limits(limits: dict, address_space: bool) -> None:
    names = [("RLIMIT_CPU", limits["cpu_seconds"]), ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_CORE", 0)]
    if address_space:  # only without a cgroup: per process, and TensorFlow reserves far more than it uses
        names.append(("RLIMIT_AS", limits["memory_bytes"]))
    for name, value in names:
        if hasattr(resource, name):
            resource.setrlimit(getattr(resource, name), (value, value))


def _private_connection_file(argv: list[str], uid: int | None, folder: str | None) -> tuple[list[str], str | None]:
    """The kernel's connection file is root's (mode 600): hand the kernel its own copy, in
    ``folder`` (the grader's to remove) or else next to the original."""
    if uid is None or "-f" not in argv:
        return argv, None
    index = argv.index("-f") + 1
    original = Path(argv[index])
    copy = Path(folder or original.parent) / (original.stem + "-sandbox.json")
    shutil.copyfile(original, copy)
    os.chown(copy, uid, uid)
    os.chmod(copy, 0o600)
    return argv[:index] + [str(copy)] + argv[index + 1:], str(copy)


def launch(plan_json: str, kernel_argv: list[str]) -> None:
    """Become the sandboxed kernel: called as the kernel spec's command, never returns."""
    plan = json.loads(plan_json)
    if plan["cgroup"]:
        from autograder import cgroups

        cgroups.StudentCgroup.from_json(plan["cgroup"]).join()  # first: all that follows counts
    kernel_argv, connection_copy = _private_connection_file(kernel_argv, plan["uid"], plan["runtime"])
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the kernel dies with its grader
    if plan["bubblewrap"]:
        connection_file = connection_copy or (kernel_argv[kernel_argv.index("-f") + 1] if "-f" in kernel_argv else None)
        if connection_file and not any(Path(connection_file).is_relative_to(p) for p in plan["read_write"]):
            plan["read_only"] = plan["read_only"] + [connection_file]
        command = bubblewrap_command(plan, kernel_argv)
        _apply_limits(plan["limits"], address_space=not plan["cgroup"])
        # An interrupt goes to the whole process group: bubblewrap ignores it (and would die of
        # it otherwise, taking the kernel along); ipykernel sets its own handler while a cell runs.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.execve(command[0], command, kernel_environment(os.environ, SANDBOX_HOME, temporary="/tmp"))
    weaker_launch(plan, kernel_argv)


def weaker_launch(plan: dict, kernel_argv: list[str]) -> None:
    """Without bubblewrap (only where the instructor accepted it): what the machine allows."""
    cwd = os.getcwd()  # the notebook's folder: kept even where its parents get hidden
    if plan["no_network"]:
        _unshare(CLONE_NEWNET)
    if plan["hide"]:
        _hide(plan["hide"])
        if plan["uid"] is not None:
            _expose(python_paths())
    os.chdir(cwd)
    _apply_limits(plan["limits"], address_space=not plan["cgroup"])
    if plan["uid"] is not None:
        os.setgroups([])
        os.setgid(plan["uid"])
        os.setuid(plan["uid"])
    _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.execve(kernel_argv[0], kernel_argv, kernel_environment(os.environ, plan["home"]))


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


# What a kernel inherits from the grader: an allow-list, never the grader's whole environment
# (an instructor's shell holds tokens and passwords). Sizes, threads and the run profile pass.
KERNEL_ENVIRONMENT = ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "LANG", "LC_ALL",
                      "LC_CTYPE", "TZ", "MPLBACKEND", "PYTHONHASHSEED")
KERNEL_ENVIRONMENT_PREFIXES = ("EFFICIENT_DL_", "NBGRADER_", "TF_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "KERAS_",
                               "JAX_", "XLA_", "CUDA_VISIBLE_DEVICES")


def kernel_environment(grader_environment, home: str, temporary: str | None = None) -> dict[str, str]:
    kept = {name: value for name, value in grader_environment.items()
            if name in KERNEL_ENVIRONMENT or name.startswith(KERNEL_ENVIRONMENT_PREFIXES)}
    # The kernel's own home and temporary folder: nothing it writes lands in a shared /tmp.
    return {**kept, "HOME": home, "TMPDIR": temporary or home, "MPLCONFIGDIR": os.path.join(home, ".matplotlib")}


class SandboxUsers:
    """Sandbox uids held for this run, one per worker slot, locked machine-wide.

    Two graders on one machine (two chapters, two instructors, a test and a real run) must
    never share a uid: each kills its uid's leftover processes after every notebook."""

    def __init__(self, count: int, lock_dir: str | os.PathLike | None = None):
        import fcntl
        import tempfile

        folder = Path(lock_dir or default_lock_folder())
        self._handles, self.uids = [], []
        uid = SANDBOX_UID_BASE
        while len(self.uids) < count:
            if uid >= SANDBOX_UID_BASE + 4_000:
                raise RuntimeError("no free sandbox uid: too many graders running on this machine")
            descriptor = os.open(folder / f"efficient-dl-sandbox-uid-{uid}.lock",
                                 os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            handle = os.fdopen(descriptor, "a")
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


def default_lock_folder() -> Path:
    """Where uid locks live: a folder of root's where the grader is root (in a world-writable
    /tmp, a student's daemon could hold every lock, or plant links, and stop later runs)."""
    import tempfile

    if hasattr(os, "geteuid") and os.geteuid() == 0 and os.path.isdir("/run"):
        folder = Path("/run/efficient-dl-grader")
        folder.mkdir(mode=0o755, exist_ok=True)
        status = os.lstat(folder)
        if stat.S_ISDIR(status.st_mode) and status.st_uid == 0 and not status.st_mode & 0o022:
            return folder
    return Path(tempfile.gettempdir())


def die_with_parent() -> None:
    """For preexec_fn: the child is killed when the grader dies (even by kill -9)."""
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def kill_user_processes(uid: int, passes: int = 100) -> int:
    """Stop everything a sandbox user still runs (a kernel that outlived its grader, a daemon
    it forked). A process may fork while one pass is killing, so passes repeat until one finds
    nothing left; returns how many processes were killed."""
    killed = 0
    for _ in range(passes):
        found = [pid for pid in processes_of(uid) if not is_zombie(pid)]  # a zombie is dead already
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not found:
            return killed
        killed += len(found)
        time.sleep(0.01)
    return killed


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except FileNotFoundError:
            pass
    return found


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits only to be reaped (or is gone)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat_line.rpartition(")")[2].split()[0] in ("Z", "X")


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
