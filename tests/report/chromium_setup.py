"""Find headless Chromium for the HTML report test, installing Debian's ``chromium`` when absent and root.

Standard library only, so CI can run it before the virtual environment exists::

    python3 tests/report/chromium_setup.py     # prints the browser path, exit 1 (with the reason) if none
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Flags for a headless run that touches no network and no profile outside ``--user-data-dir``.
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


def find_chromium() -> str | None:
    """``$CHROMIUM`` if set, else the first Chromium/Chrome on PATH (or /usr/bin/chromium)."""
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def ensure_chromium(timeout_s: int = 900) -> tuple[str | None, str]:
    """(path, "") when a browser is available or could be installed, else (None, why not)."""
    path = find_chromium()
    if path:
        return path, ""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "chromium is not installed and the tests do not run as root, so apt-get cannot install it"
    if not shutil.which("apt-get"):
        return None, "chromium is not installed and there is no apt-get to install the Debian package"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"])
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(cmd)}` took longer than {timeout_s} s"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {last}"
    path = find_chromium()
    return (path, "") if path else (None, "apt-get installed chromium but no chromium binary is on PATH")


if __name__ == "__main__":
    found, reason = ensure_chromium()
    print(found or f"no chromium: {reason}")
    sys.exit(0 if found else 1)
