"""Run a benchmark inside a private network namespace (only `lo`), re-executing itself if needed,
so load traffic can only ever reach 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys


def in_private_netns() -> bool:
    try:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    names = [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines() if ":" in ln]
    return names == ["lo"]


def ensure_netns() -> None:
    """Re-exec the current module under `unshare -n` unless already isolated."""
    if in_private_netns():
        return
    if os.environ.get("TALKY_NETNS_REEXEC"):
        raise SystemExit("could not enter a private network namespace")
    env = {**os.environ, "TALKY_NETNS_REEXEC": "1"}
    cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.orig_argv[1:]]
    raise SystemExit(subprocess.call(cmd, env=env))
