import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The models here are tiny: one thread is faster than two fighting over small kernels."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
