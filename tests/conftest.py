import json
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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
