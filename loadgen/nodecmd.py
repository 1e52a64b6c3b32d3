"""The node drill's fault and restore commands: templates with {node}, split like a shell
would (no shell runs them), the default `cluster/node.sh` found in this repository from any
working directory, every run bounded."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from loadgen.nodeloss import Refusal

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FAULT = "cluster/node.sh cut {node}"
DEFAULT_RESTORE = "cluster/node.sh restore {node}"


def argv(template: str, node: str) -> list[str]:
    """The command for this node; a relative program path (cluster/node.sh) is looked up in
    the working directory, then in the repository. Refuses in one line when it is missing."""
    try:
        words = [w.replace("{node}", node) for w in shlex.split(template)]
    except ValueError as exc:
        raise Refusal(f"cannot parse the command {template!r}: {exc}") from exc
    if not words:
        raise Refusal("empty fault/restore command")
    prog = words[0]
    if "/" in prog:
        candidates = [Path(prog)] if os.path.isabs(prog) else [Path.cwd() / prog, REPO / prog]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise Refusal(
                f"{prog} not found (looked in {', '.join(str(c.parent) for c in candidates)}); "
                "on another cluster pass --fault-cmd/--restore-cmd, e.g. "
                "--fault-cmd 'minikube node stop {node}'"
            )
        if not os.access(found, os.X_OK):
            raise Refusal(f"{found} is not executable")
        words[0] = str(found)
    elif shutil.which(prog) is None:
        raise Refusal(f"{prog} not found on PATH (the command {template!r})")
    return words


def run(words: list[str], timeout: float) -> dict[str, Any]:
    """Runs it to the end or `timeout`; the result with its last output line. Never raises
    for a failing command: the caller decides (a fault that failed stops the drill)."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            words, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        out = (proc.stdout + proc.stderr).strip().splitlines()
        rc: int | None = proc.returncode
        last = out[-1] if out else ""
    except subprocess.TimeoutExpired:
        rc, last = None, f"did not finish within {timeout:g}s (killed)"
    except OSError as exc:
        rc, last = None, f"could not start: {exc}"
    return {
        "command": shlex.join(words),
        "exit_code": rc,
        "ok": rc == 0,
        "seconds": round(time.monotonic() - t0, 2),
        "output": last[:300],
    }
