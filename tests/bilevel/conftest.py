import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are tiny: one thread is fastest, and two on a shared 2-core machine spin-wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
