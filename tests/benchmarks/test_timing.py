"""The benchmarks' memory measure on the CPU: the allocator's peak, to the byte."""

import torch

from benchmarks.timing import peak_memory


def test_the_cpu_peak_is_the_most_bytes_alive_at_once():
    def allocate():
        first = torch.ones(1000, 1000)  # 4,000,000 bytes
        second = torch.ones(500, 1000)  # 2,000,000 alive beside it: the peak
        del first
        third = torch.ones(100, 1000)  # 400,000 more, after 4,000,000 were freed
        return second, third

    assert peak_memory(allocate) == 6_000_000
    assert peak_memory(lambda: None) == 0
