"""The bubblewrap command line a slot's launcher starts in."""

from __future__ import annotations

import os
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent / "harness"
SANDBOX_HARNESS_DIR = "/koan"  # where bubblewrap shows the harness inside the sandbox
INTERPRETER_FLAGS = ("-I", "-S", "-B", "-X", "utf8")  # isolated, no site, no .pyc, UTF-8
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def bwrap_argv(bwrap: str, python: str, config: str) -> list[str]:
    """The bubblewrap command that starts a launcher in a fresh, read-only world.

    No user namespace (unlike --unshare-all): the launcher must stay real root inside to switch
    each run to its slot uid and mount its tmpfs. It keeps only the capabilities for that (and
    SETPCAP, to empty each run's bounding set); runs lose them all with the uid switch. Nothing
    of the host's /etc, /home, /root, /var, /tmp, /work or /proc is visible.
    """
    argv = [
        bwrap,
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--hostname",
        "koan",
    ]
    for name, value in ENVIRONMENT.items():
        argv += ["--setenv", name, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    argv += [
        # Made by hand so it is world-searchable: bwrap creates parents of binds as 0700.
        "--perms",
        "0755",
        "--dir",
        "/etc",
        "--ro-bind-try",
        "/etc/ld.so.cache",
        "/etc/ld.so.cache",
        "--dev",
        "/dev",
        # Its /dev/shm is root's and the whole /dev read-only: no POSIX shared memory either.
        "--remount-ro",
        "/dev",
        "--dir",
        "/work",
        "--symlink",
        "/work",
        "/tmp",
        "--ro-bind",
        str(HARNESS_DIR),
        SANDBOX_HARNESS_DIR,
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        "--cap-add",
        "CAP_SETPCAP",  # only so each run can empty its bounding set
        "--remount-ro",
        "/",
        "--chdir",
        "/",
        "--",
        python,
        *INTERPRETER_FLAGS,
        f"{SANDBOX_HARNESS_DIR}/zygote_main.py",
        config,
    ]
    return argv
