import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
_CHILD_ENV = "DETBOX_TEST_OWN_PROCESS"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Tests marked ``own_process`` run in a child pytest process: OpenVINO's thread pool makes
    a later ``fork`` of the process that ran it crash (the test suite starts many processes)."""
    if pyfuncitem.get_closest_marker("own_process") is None or os.environ.get(_CHILD_ENV):
        return None
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid],
        cwd=pyfuncitem.config.rootpath, env={**os.environ, _CHILD_ENV: "1"},
        capture_output=True, text=True, timeout=900,
    )
    output = child.stdout[-6000:] + child.stderr[-2000:]
    if child.returncode != 0 or " passed" not in child.stdout:
        pytest.fail(f"{pyfuncitem.nodeid} in its own process (exit {child.returncode}):\n{output}",
                    pytrace=False)
    return True


@pytest.fixture(autouse=True)
def single_thread():
    """The test models are tiny: one thread is faster than two fighting over small kernels."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_dataset(name: str) -> Path:
    """A real dataset from ``../shared/data``; the test is skipped (with the reason) if absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (the repo's sibling shared/data)")
    return path


def logged_train_losses(work_dir: Path) -> dict[tuple[int, int], float]:
    """``{(epoch, iter): loss}`` of every logged training step in ``work_dir``'s JSON-lines
    logs; a resumed run's records replace the ones its first run logged for the same step."""
    records = {}
    for log in sorted(Path(work_dir).glob("*.log.jsonl")):
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record.get("mode") == "train":
                records[(record["epoch"], record["iter"])] = record["loss"]
    return records
