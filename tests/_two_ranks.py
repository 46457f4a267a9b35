"""Run a two-process ``torch.distributed`` scenario on the CPU and collect what each rank wrote."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_ranks(
    commands: Sequence[Sequence[str]],
    root: Path,
    *,
    timeout: float,
    envs: Sequence[Mapping[str, str] | None] = (None, None),
) -> list[dict]:
    """Start rank ``r`` as ``commands[r]`` (environment ``envs[r]``), wait for both, and return
    each rank's ``root / f"result_{r}.json"``; a rank that fails fails the test with its output.
    """
    processes = [
        subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for command, env in zip(commands, envs, strict=True)
    ]
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for rank, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output}"
    return [json.loads((root / f"result_{r}.json").read_text()) for r in range(len(commands))]
