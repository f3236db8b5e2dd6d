"""The sandbox's parts on their own: cgroups of both versions, and the bubblewrap command line.

The whole sandbox, attacked by a class, is tests/test_class_grader.py; here each part is
checked where a failure is easy to read: the files a cgroup tree of each version gets (on a
tree the test makes, as the machine may have the other version), the limits a real cgroup
holds where this machine has one, and what bubblewrap is told to put in the sandbox.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import cgroups, sandbox

CAPABILITIES = sandbox.probe()
GiB = 2**30


def fake_v2_tree(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_a_v2_group_is_made_below_a_group_of_the_graders_own_with_both_limits(tmp_path):
    root = fake_v2_tree(tmp_path / "cgroup")
    group = cgroups.create("uid-61000", 3 * GiB, 300, root=root, proc_self_cgroup="0::/user.slice/session-1.scope\n")
    folder = root / cgroups.GROUP / "uid-61000"
    assert group == cgroups.StudentCgroup(2, (str(folder),))
    assert (root / "cgroup.subtree_control").read_text().split() == ["+memory", "+pids"]
    assert (root / cgroups.GROUP / "cgroup.subtree_control").read_text().split() == ["+memory", "+pids"]
    assert int((folder / "memory.max").read_text()) == 3 * GiB
    assert int((folder / "pids.max").read_text()) == 300


def test_a_v1_group_is_made_in_each_controllers_tree_below_the_graders_own(tmp_path):
    root = tmp_path / "cgroup"
    for controller in ("memory", "pids"):
        (root / controller).mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")
    group = cgroups.create("uid-61001", 2 * GiB, 128, root=root,
                           proc_self_cgroup="8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n")
    memory = root / "memory" / "process_api" / "abc" / cgroups.GROUP / "uid-61001"
    pids = root / "pids" / cgroups.GROUP / "uid-61001"
    assert group == cgroups.StudentCgroup(1, (str(memory), str(pids)))
    assert int((memory / "memory.limit_in_bytes").read_text()) == 2 * GiB
    assert int((pids / "pids.max").read_text()) == 128


def test_a_tree_without_the_controllers_is_refused_in_words(tmp_path):
    root = fake_v2_tree(tmp_path / "cgroup", controllers="cpu io")
    with pytest.raises(cgroups.CgroupUnavailable, match="not memory and pids"):
        cgroups.create("uid-61002", GiB, 64, root=root, proc_self_cgroup="0::/\n")
    with pytest.raises(cgroups.CgroupUnavailable, match="no cgroup tree"):
        cgroups.create("uid-61002", GiB, 64, root=tmp_path / "nothing-here", proc_self_cgroup="0::/\n")


@pytest.mark.skipif(CAPABILITIES.cgroups is None, reason=f"no writable cgroup here ({CAPABILITIES.cgroup_problem})")
def test_a_real_group_holds_the_memory_and_processes_of_all_its_members_together():
    group = cgroups.create(f"test-{os.getpid()}", 256 * 2**20, 16)
    try:
        def run(code: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-c", code], preexec_fn=group.join, capture_output=True,
                                  text=True, timeout=60)
        # Two children of 160 MiB each: either alone fits, both together do not.
        together = run("import subprocess, sys\n"
                       "code = 'import time; b = b\"x\" * (160 * 2**20); time.sleep(3)'\n"
                       "children = [subprocess.Popen([sys.executable, '-c', code]) for _ in range(2)]\n"
                       "print(sorted(c.wait() for c in children))\n")
        assert "-9" in together.stdout or together.returncode == -9, together
        forks = run("import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n"
                    "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n"
                    "    n += 1\nprint(n)\n")
        assert forks.returncode == 0 and int(forks.stdout) < 16, forks
        assert group.peak_memory_bytes() <= 256 * 2**20
    finally:
        group.remove()
    assert not any(Path(folder).exists() for folder in group.folders)


def plan(**changes) -> dict:
    fields = sandbox.SandboxPlan(limits=dataclasses.asdict(sandbox.Limits()), uid=61000, hide=[], no_network=True,
                                 home=sandbox.SANDBOX_HOME, bubblewrap="/usr/bin/bwrap",
                                 read_only=["/opt/python", "/srv/course/runs/ch01/model-cache"],
                                 read_write=["/tmp/edl-abc"])
    return {**dataclasses.asdict(fields), **changes}


def test_the_sandbox_holds_only_what_is_on_the_allow_list():
    command = sandbox.bubblewrap_command(plan(), ["/opt/python/bin/python", "-m", "ipykernel_launcher"])
    binds = [(command[i], command[i + 1], command[i + 2]) for i, word in enumerate(command)
             if word in ("--bind", "--ro-bind", "--ro-bind-try", "--dev-bind-try")]
    sources = {source for _, source, _ in binds}
    etc = {source for source in sources if source.startswith("/etc/")}
    system = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", *sandbox.SYS_ALLOWED}
    gpus = {source for source in sources if source.startswith("/dev/nvidia")}
    assert "/usr" in sources
    assert sources - etc - system - gpus == {"/opt/python", "/srv/course/runs/ch01/model-cache", "/tmp/edl-abc"}
    assert etc <= {f"/etc/{name}" for name in sandbox.ETC_ALLOWED} and "/etc/shadow" not in etc
    writable = {source for kind, source, _ in binds if kind == "--bind"}
    assert writable == {"/tmp/edl-abc"}, "the kernel writes only its socket folder and its own tmpfs"
    for flag in ("--unshare-pid", "--unshare-net", "--die-with-parent", "--as-pid-1", "--proc", "--dev"):
        assert flag in command
    tmpfs = [command[i + 1] for i, word in enumerate(command) if word == "--tmpfs"]
    assert tmpfs == ["/tmp", "/dev/shm", sandbox.SANDBOX_HOME]
    assert "--no-new-privs" in command and "--bounding-set=-all" in command, "the sandbox uid holds no capability"
    assert command[-3:] == ["/opt/python/bin/python", "-m", "ipykernel_launcher"]


def test_every_folder_above_a_bound_path_is_made_enterable():
    command = sandbox.bubblewrap_command(plan(read_only=["/root/.pyenv/versions/3.11.7"]), ["python"])
    made = [command[i + 3] for i, word in enumerate(command) if word == "--perms" and command[i + 2] == "--dir"
            and command[i + 1] == "0755"]
    assert {"/etc", "/home", "/root", "/root/.pyenv", "/root/.pyenv/versions"} <= set(made)
    assert made.index("/root") < made.index("/root/.pyenv") < made.index("/root/.pyenv/versions")
    assert command.index("/root/.pyenv/versions") < command.index("/root/.pyenv/versions/3.11.7"), "made before bound"


def test_without_root_bubblewrap_gets_a_user_namespace_and_no_uid_change():
    command = sandbox.bubblewrap_command(plan(uid=None), ["python"])
    assert "--unshare-user" in command and "setpriv" not in " ".join(command)
