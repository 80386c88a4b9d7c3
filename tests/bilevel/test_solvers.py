import torch

from bilevel import conjugate_gradient, neumann_series


def _spd(dim: int, seed: int) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T + dim * torch.eye(dim, dtype=torch.float64)


def test_conjugate_gradient_solves_in_dim_iterations():
    h = _spd(12, 0)
    b = torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = conjugate_gradient(lambda v: h @ v, b, iters=12)
    torch.testing.assert_close(x, torch.linalg.solve(h, b), rtol=1e-10, atol=0)


def test_conjugate_gradient_one_step_is_the_exact_line_search_along_b():
    h = _spd(5, 2)
    b = torch.randn(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = conjugate_gradient(lambda v: h @ v, b, iters=1)
    torch.testing.assert_close(x, (b @ b) / (b @ h @ b) * b, rtol=1e-14, atol=0)


def test_neumann_error_shrinks_at_the_spectral_rate():
    h = _spd(6, 4)
    eigs = torch.linalg.eigvalsh(h)
    alpha = 1.0 / eigs.max().item()
    rate = (1 - alpha * eigs).abs().max().item()
    b = torch.linalg.eigh(h).eigenvectors[:, 0]  # the slowest direction: error exactly rate^J
    exact = torch.linalg.solve(h, b)
    errors = [(neumann_series(lambda v: h @ v, b, alpha, j) - exact).norm().item() for j in (10, 20)]
    assert abs(errors[1] / errors[0] - rate**10) < 1e-10
