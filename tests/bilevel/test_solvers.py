import torch

from bilevel import conjugate_gradient, dense_solve, neumann_series, solve_or_nan


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


def test_conjugate_gradient_stops_at_its_tolerance():
    """Relative and absolute tolerances: the first iterate whose residual is within it, counted."""
    h = _spd(30, 5)
    b = torch.randn(30, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    calls = []
    product = lambda v: calls.append(1) or h @ v
    for tol, atol in ((1e-3, 0.0), (0.0, 1e-3 * b.norm().item())):
        calls.clear()
        x = conjugate_gradient(product, b, iters=30, tol=tol, atol=atol)
        assert (b - h @ x).norm() <= 1e-3 * b.norm()
        one_fewer = conjugate_gradient(lambda v: h @ v, b, iters=len(calls) - 1)
        assert (b - h @ one_fewer).norm() > 1e-3 * b.norm()  # it stopped at the first that qualifies
        assert len(calls) < 30


def test_conjugate_gradient_vmaps_and_survives_an_exact_solve():
    """Without a tolerance there is no data-dependent branch: vmapped over right-hand sides it
    equals the per-system solves, and iterations past an exact solve (a 2×2 system, 5 iterations)
    leave the answer finite and unchanged."""
    h = _spd(8, 7)
    bs = torch.randn(3, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    batched = torch.func.vmap(lambda b: conjugate_gradient(lambda v: h @ v, b, iters=8))(bs)
    torch.testing.assert_close(batched, torch.linalg.solve(h, bs.T).T, rtol=1e-9, atol=0)
    diagonal = torch.diag(torch.tensor([2.0, 2.0], dtype=torch.float64))
    x = conjugate_gradient(lambda v: diagonal @ v, torch.tensor([1.0, 3.0], dtype=torch.float64), iters=5)
    assert x.tolist() == [0.5, 1.5]


def test_conjugate_gradient_on_the_normal_equations_solves_a_nonsymmetric_system():
    m = torch.randn(10, 10, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    m = m + 10 * torch.eye(10, dtype=torch.float64)
    b = torch.randn(10, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    x = conjugate_gradient(lambda v: m.T @ (m @ v), m.T @ b, iters=40, tol=1e-13)
    torch.testing.assert_close(x, torch.linalg.solve(m, b), rtol=1e-9, atol=0)


def test_dense_solve_forms_the_operator_column_by_column():
    m = torch.randn(7, 7, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    m = m + 7 * torch.eye(7, dtype=torch.float64)  # not symmetric: rows and columns differ
    b = torch.randn(7, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    torch.testing.assert_close(dense_solve(lambda v: m @ v, b), torch.linalg.solve(m, b), rtol=1e-12, atol=0)


def test_a_tolerance_met_at_the_start_takes_no_product():
    """‖b − H·0‖ = ‖b‖ ≤ 1·‖b‖: with tol = 1 (or atol = ‖b‖) x₀ = 0 is already within tolerance."""
    b = torch.tensor([3.0, 4.0], dtype=torch.float64)
    calls = []
    product = lambda v: calls.append(1) or 2 * v
    assert conjugate_gradient(product, b, iters=5, tol=1.0).tolist() == [0.0, 0.0]
    assert conjugate_gradient(product, b, iters=5, atol=5.0).tolist() == [0.0, 0.0] and not calls
    assert conjugate_gradient(product, b, iters=5, tol=0.5).tolist() == [1.5, 2.0] and len(calls) == 1


def test_solve_or_nan_answers_nan_where_no_unique_finite_solution_exists():
    """Batched as torch.linalg.solve, each system apart: a singular or non-finite one gives NaN
    (never an error, nor LAPACK on a non-finite matrix), the others exactly torch's answer."""
    m = torch.stack([_spd(3, 1), torch.ones(3, 3, dtype=torch.float64), _spd(3, 2), _spd(3, 3)])
    m[3, 0, 1] = float("inf")
    b = torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = solve_or_nan(m, b)
    for k in (0, 2):
        assert torch.equal(x[k], torch.linalg.solve(m[k], b[k]))
    assert x[1].isnan().all() and x[3].isnan().all()
    assert torch.equal(solve_or_nan(m[0], b[0]), torch.linalg.solve(m[0], b[0]))  # unbatched
    assert torch.func.vmap(solve_or_nan)(m, b)[1:].isnan().any(-1).tolist() == [True, False, True]


def test_solve_or_nan_keeps_the_systems_dtype_device_and_batch_shape():
    """A float32 batch under a float64 default stays float32; two batch dimensions (2, 3) of 4x4
    systems, one non-finite, are answered system by system; on the meta device (a stand-in for a
    GPU) every tensor it makes is made there."""
    m = torch.eye(4).expand(2, 3, 4, 4).clone() * torch.arange(1.0, 7.0).reshape(2, 3, 1, 1)
    m[1, 2, 0, 0] = float("nan")
    b = torch.ones(2, 3, 4)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        x = solve_or_nan(m, b)
    finally:
        torch.set_default_dtype(default)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 4)
    expected = (1 / torch.arange(1.0, 7.0)).reshape(2, 3, 1).expand(2, 3, 4).clone()
    expected[1, 2] = float("nan")
    torch.testing.assert_close(x, expected, equal_nan=True, rtol=0, atol=0)
    on_meta = solve_or_nan(m.to("meta"), b.to("meta"))
    assert on_meta.device.type == "meta" and on_meta.shape == (2, 3, 4)


def test_dense_solve_of_a_diverged_operator_is_nan_not_an_error():
    """A DEQ's adjoint (I − Jᵀ)u = g at a diverged iterate: J non-finite, or I − Jᵀ singular."""
    b = torch.ones(3)
    assert dense_solve(lambda v: v * float("nan"), b).isnan().all()
    assert dense_solve(lambda v: v - v, b).isnan().all()


def test_a_huge_tolerance_or_residual_is_no_overflow():
    """tol·‖b‖ squared past float64 (Python's ** raised OverflowError): x₀ = 0 meets it, as any
    tol >= 1 does. A ‖b‖² that overflows (float64 past 1e154, float32 past 1e19) is no residual
    under the tolerance: CG cannot run there, and says so with NaN instead of x = 0."""
    assert (
        conjugate_gradient(lambda v: v, torch.ones(4, dtype=torch.float64), iters=3, tol=1e200).tolist()
        == [0.0] * 4
    )
    for b in (torch.full((4,), 1e160, dtype=torch.float64), torch.full((4,), 1e30)):
        assert conjugate_gradient(lambda v: v, b, iters=3, tol=1e-6).isnan().all()
