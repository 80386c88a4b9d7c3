import pytest
import torch


@pytest.fixture
def one_thread():
    """Small models run fastest on one thread; two threads on a shared 2-core machine spin-wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
