"""Run inside ``unshare -n`` (a network namespace whose only interface is loopback): start a real Ray head on
127.0.0.1, run a ray sweep against it, optionally SIGKILL the worker running a cell once its first task is done,
then stop the head. Used by test_ray.py; prints the sweep's output and exits with its code.

    python ray_netns.py sweep|kill-worker SUITE OUT
    python ray_netns.py exec -- CMD ...      (CMD runs with RAY_ADDRESS pointing at the head)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 6391
MARK = "CLBENCH_RAY_TEST_MARK"


def wait_port(port: int, limit: float = 120) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the Ray head did not open 127.0.0.1:{port}")


def worker_pids(mark: str) -> list[int]:
    """Ray worker processes of *this* cluster (they inherit the mark from the head's environment)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd.startswith(b"ray::_ray_cell") and f"{MARK}={mark}".encode() in env:
            pids.append(int(proc.name))
    return pids


def main() -> int:
    mode = sys.argv[1]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = tempfile.mkdtemp(prefix="clray", dir="/tmp")  # short: Ray's unix socket paths must fit 107 bytes
    mark = str(os.getpid())
    env = {**os.environ, MARK: mark, "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={PORT}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={tmp}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_port(PORT)
        if mode == "exec":
            return subprocess.run(sys.argv[sys.argv.index("--") + 1:], env={**env, "RAY_ADDRESS": f"127.0.0.1:{PORT}"}).returncode
        suite, out = sys.argv[2:4]
        cmd = [sys.executable, "-m", "clbench.cli", "sweep", suite, "--executor", "ray", "--ray.address",
               f"127.0.0.1:{PORT}", "--out", out, "--quiet", "--no-report"]
        t0 = time.time()
        sweep = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if mode == "kill-worker":
            killed = None
            deadline = time.time() + 300
            while killed is None and time.time() < deadline and sweep.poll() is None:
                infos = [json.loads(p.read_text()) for p in Path(out).rglob("run.json")]
                midway = [i for i in infos if i.get("status") == "running" and i.get("completed_tasks", 0) >= 1]
                if midway:
                    pids = worker_pids(mark)
                    if len(pids) == 1:  # only the mid-run cell's worker is busy: that is the one killed
                        os.kill(pids[0], signal.SIGKILL)
                        killed = pids[0]
                time.sleep(0.05)
            print(f"killed worker {killed}", flush=True)
        stdout, stderr = sweep.communicate(timeout=600)
        print(stdout + stderr, end="")
        print(f"sweep took {time.time() - t0:.1f}s")
        logs = "".join(p.read_text(errors="replace") for p in Path(tmp).rglob("worker-*.err"))
        print("WORKER LOGS:\n" + "\n".join(ln for ln in logs.splitlines() if "resuming" in ln or "==" in ln))
        return sweep.returncode
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main())
