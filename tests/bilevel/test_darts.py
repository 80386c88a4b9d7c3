"""`bilevel.darts` against hand computations: the mixed edge, the derivation rule, the search loop's
α gradient and weight step, the implicit function theorem through `SupernetProblem`, and the power
iteration, on supernets small enough to form every Hessian in float64."""

import math

import pytest
import torch
import torch.nn.functional as F

import bilevel
from bilevel import darts
from bilevel.darts import OPS, Edge
from bilevel.digits import load_digits


def _tiny(nodes=2, width=3, seed=0):
    net = darts.supernet(nodes=nodes, width=width).double()
    darts.initialise(net, torch.Generator().manual_seed(seed))
    return net


def _batches(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, n, 64, generator=g, dtype=torch.float64)
    y = torch.randint(10, (2, n), generator=g)
    return (x[0], y[0]), (x[1], y[1])


def test_the_mixed_edge_is_the_softmax_weighted_sum_of_its_operations():
    g = torch.Generator().manual_seed(1)
    edge = darts.MixedOp(OPS, 5).double()
    darts.initialise(edge, g)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    weights = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    linear, mlp = edge.ops[2][1], (edge.ops[3][1], edge.ops[3][4])
    norm = lambda h: F.layer_norm(h, (5,))
    by_hand = (
        weights[0] * 0
        + weights[1] * x
        + weights[2] * norm(x.clamp(min=0) @ linear.weight.T + linear.bias)
        + weights[3]
        * norm(
            norm(x.clamp(min=0) @ mlp[0].weight.T + mlp[0].bias).clamp(min=0) @ mlp[1].weight.T + mlp[1].bias
        )
    )
    torch.testing.assert_close(edge(x, weights), by_hand, rtol=1e-14, atol=1e-14)
    one_hot = torch.eye(4, dtype=torch.float64)[2]
    torch.testing.assert_close(edge(x, one_hot), edge.ops[2](x), rtol=0, atol=0)


def test_derive_keeps_the_top_k_edges_by_their_strongest_non_none_operation():
    # nodes=3: edges 0→1, 0→2, 1→2, 0→3, 1→3, 2→3; columns none, skip, linear, mlp
    alpha = torch.tensor(
        [
            [9.0, 0.0, 1.0, 0.0],  # 0→1: none strongest, yet node 1 keeps its only edge, as linear
            [0.0, 2.0, 0.0, 0.0],  # 0→2: skip, weight e²/(e²+3) = 0.71
            [0.0, 0.0, 0.0, 3.0],  # 1→2: mlp, 0.87: node 2 keeps both
            [5.0, 0.0, 0.0, 1.0],  # 0→3: mlp at e/(e⁵+e+2) = 0.017: the weakest of node 3
            [0.0, 0.0, 1.5, 0.0],  # 1→3: linear, 0.60
            [0.0, 1.0, 0.0, 0.0],  # 2→3: skip, 0.48
        ]
    )
    genotype = darts.derive(alpha, nodes=3, top_k=2)
    assert genotype.edges == (
        Edge(0, 1, "linear"),
        Edge(0, 2, "skip"),
        Edge(1, 2, "mlp"),
        Edge(1, 3, "linear"),
        Edge(2, 3, "skip"),
    )
    assert darts.derive(alpha, nodes=3, top_k=1).edges[2] == Edge(1, 3, "linear")
    assert darts.skip_fraction(torch.softmax(alpha, -1)) == pytest.approx(4 / 6)  # none, skip, none, skip


def test_a_derived_network_is_the_supernet_with_one_hot_weights_on_its_edges():
    """`network(genotype)` given the supernet's weights of its chosen operations computes what the
    supernet computes with weight 1 on each kept edge's operation and 0 on every other."""
    supernet = _tiny(nodes=3, width=5)
    genotype = darts.Genotype(
        (Edge(0, 1, "mlp"), Edge(0, 2, "skip"), Edge(1, 2, "linear"), Edge(2, 3, "mlp")), 3, 1
    )
    edges = darts.edge_list(3)
    weights = torch.zeros(len(edges), len(OPS), dtype=torch.float64)
    net = darts.network(genotype, width=5).double()
    state = {k: v for k, v in supernet.state_dict().items() if not k.startswith("cells.")}
    for m, edge in enumerate(genotype.edges):
        e, k = edges.index((edge.source, edge.target)), OPS.index(edge.op)
        weights[e, k] = 1.0
        prefix = f"cells.0.mixed.{e}.ops.{k}."
        for name, value in supernet.state_dict().items():
            if name.startswith(prefix):
                state[f"cells.0.mixed.{m}.ops.0." + name[len(prefix) :]] = value
    net.load_state_dict(state)  # strict: every weight of the network comes from the supernet
    x = torch.rand(6, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(net(x), supernet(x, weights), rtol=1e-14, atol=1e-14)


def test_random_architectures_lie_in_the_derived_space():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        genotype = darts.random_genotype(g, nodes=4, top_k=2)
        targets = [e.target for e in genotype.edges]
        assert targets == sorted(targets) and [targets.count(j) for j in range(1, 5)] == [1, 2, 2, 2]
        assert all(e.op != "none" and e.source < e.target for e in genotype.edges)
        assert len(set(genotype.edges)) == len(genotype.edges)


def test_first_order_search_steps_alpha_by_the_partial_derivative_and_then_w():
    """Through `search`: the first α step uses ∂L_val/∂α at w₀ (autograd on the module itself), and
    the w step after it is SGD on L_train at the new α."""
    data = load_digits(dtype=torch.float64)
    settings = darts.SearchSettings(nodes=2, width=3, epochs=1, batch_size=400, power_iters=0, ift_iters=0)
    calls = []

    def recording(problem, lam, w=None):
        calls.append((problem, lam.clone(), w.clone()))
        return bilevel.make_method("first_order")(problem, lam, w=w)

    result = darts.search(data, recording, settings, torch.Generator().manual_seed(3))
    assert result.steps == len(calls) == math.ceil(997 / 400)
    (first, lam0, w0), (_, lam1, w1) = calls[0], calls[1]
    assert torch.equal(lam0, result.alphas[0].reshape(-1))
    net = darts.supernet(nodes=2, width=3).double()
    torch.nn.utils.vector_to_parameters(w0, net.parameters())
    alpha = lam0.view(3, 4).clone().requires_grad_()
    F.cross_entropy(net(first.val[0], torch.softmax(alpha, -1)), first.val[1]).backward()
    value = bilevel.make_method("first_order")(first, lam0, w=w0).value
    torch.testing.assert_close(value, alpha.grad.reshape(-1), rtol=1e-12, atol=1e-15)
    net.zero_grad()
    loss = F.cross_entropy(net(first.train[0], torch.softmax(lam1.view(3, 4), -1)), first.train[1])
    loss.backward()
    gradient = torch.cat([p.grad.reshape(-1) for p in net.parameters()]) + settings.weight_decay * w0
    torch.testing.assert_close(w1, w0 - settings.w_lr * gradient, rtol=1e-12, atol=1e-14)


def test_ift_exact_through_the_supernet_problem_is_the_implicit_function_theorem():
    """dF/dα = ∂_αL_val − (∂²_{wα}L_train)ᵀ (∂²_ww L_train)⁻¹ ∂_wL_val, every piece formed by
    torch.autograd.functional at a w that is no minimum (the Hessian there has an eigenvalue −0.64:
    the damping δ = 1 makes it definite)."""
    net = _tiny()
    flat = darts.Flat(net)
    w = flat.flatten()
    alpha = 0.5 * torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    train, val = _batches()
    problem = darts.SupernetProblem(flat, train, val, w, alpha, 0.1, weight_decay=0.01, damping=1.0)
    lam = alpha.reshape(-1)
    hessian = torch.autograd.functional.hessian(lambda u: problem.train_loss(u, lam), w, vectorize=True)
    mixed = torch.autograd.functional.jacobian(
        lambda a: torch.autograd.grad(problem.train_loss(w.requires_grad_(), a), w, create_graph=True)[0],
        lam,
        vectorize=True,
    )  # (dim w, dim α)
    w = w.detach()
    val_w = torch.autograd.functional.jacobian(lambda u: problem.val_loss(u, lam), w)
    val_lam = torch.autograd.functional.jacobian(lambda a: problem.val_loss(w, a), lam)
    by_hand = val_lam - mixed.T @ torch.linalg.solve(hessian, val_w)
    assert torch.linalg.eigvalsh(hessian).min() > 0
    value = bilevel.make_method("ift_exact")(problem, lam, w=w).value
    torch.testing.assert_close(value, by_hand, rtol=1e-9, atol=1e-12)
    assert bilevel.relative_error(value, val_lam) > 1e-3  # the implicit term is not negligible


def test_the_training_loss_adds_weight_decay_and_a_proximal_damping_around_the_first_w():
    """L_train(w, α) = CE + (wd/2)‖w‖² + (δ/2)‖w − w₀‖², w₀ the weights the problem was made at."""
    flat = darts.Flat(_tiny())
    w0 = flat.flatten()
    alpha = torch.zeros(3, 4, dtype=torch.float64)
    lam, w = alpha.reshape(-1), w0 + 0.01
    plain = darts.SupernetProblem(flat, *_batches(), w0, alpha, 0.1)
    both = darts.SupernetProblem(flat, *_batches(), w0, alpha, 0.1, weight_decay=0.3, damping=2.0)
    added = 0.5 * 0.3 * w.square().sum() + 0.5 * 2.0 * 0.01**2 * w.numel()
    torch.testing.assert_close(both.train_loss(w, lam), plain.train_loss(w, lam) + added, rtol=1e-13, atol=0)


def test_the_supernet_has_no_solved_w_star_so_methods_must_be_given_the_current_w():
    """No closed-form w*(α) exists for a network: a method asked to find one says so, not solves."""
    net = _tiny()
    flat = darts.Flat(net)
    alpha = torch.zeros(3, 4, dtype=torch.float64)
    problem = darts.SupernetProblem(flat, *_batches(), flat.flatten(), alpha, 0.1)
    with pytest.raises(
        NotImplementedError, match=r"^the supernet's w\* is not solved for: methods take the current w$"
    ):
        bilevel.make_method("ift_exact")(problem, alpha.reshape(-1))


def test_power_iteration_finds_the_dominant_eigenvalue_of_the_alpha_hessian():
    net = _tiny(width=4)
    flat = darts.Flat(net)
    w = flat.flatten()
    alpha = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    train, val = _batches(seed=1)
    problem = darts.SupernetProblem(flat, train, val, w, alpha, 0.1)
    lam = alpha.reshape(-1)
    hessian = torch.autograd.functional.hessian(lambda a: problem.val_loss(w, a), lam)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    estimate = darts.dominant_eigenvalue(lambda v: hessian @ v, lam, 300, torch.Generator().manual_seed(0))
    assert estimate == pytest.approx(dominant, rel=1e-8)
    for v in torch.randn(3, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64):
        torch.testing.assert_close(darts.alpha_hessian_product(problem, w, lam, v), hessian @ v)


def test_the_ift_reference_is_cg_on_the_hessian_damped_past_its_negative_curvature():
    """`ift_cosine`: the weight Hessian's extreme eigenvalues by power iteration match eigvalsh, the
    damping is δ₀ + 2 max(0, −λ_min), and the cosine is that of first_order to the exact IFT
    hypergradient of the problem so damped."""
    net = _tiny(nodes=1, width=2, seed=4)
    flat = darts.Flat(net)
    w = flat.flatten()
    alpha = 0.3 * torch.randn(1, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    train, val = _batches(n=20, seed=2)
    lam = alpha.reshape(-1)
    settings = darts.SearchSettings(nodes=1, power_iters=60, ift_iters=300, ift_tol=1e-10, damping=0.05)
    problem = darts.SupernetProblem(flat, train, val, w, alpha, 0.1, settings.weight_decay, settings.damping)
    found = darts.ift_cosine(problem, w, lam, bilevel.make_method("first_order"), settings, torch.Generator())
    undamped = darts.SupernetProblem(flat, train, val, w, alpha, 0.1, settings.weight_decay)
    eigenvalues = torch.linalg.eigvalsh(torch.func.hessian(undamped.train_loss)(w, lam))
    assert found["search/weight_hessian_min"] == pytest.approx(eigenvalues[0].item(), rel=0.05)
    assert found["search/weight_hessian_max"] == pytest.approx(eigenvalues[-1].item(), rel=1e-4)
    assert eigenvalues[0] < -settings.damping  # indefinite even after δ₀
    assert found["search/ift_damping"] == settings.damping - 2 * found["search/weight_hessian_min"]
    damped = darts.SupernetProblem(
        flat, train, val, w, alpha, 0.1, settings.weight_decay, found["search/ift_damping"]
    )
    exact = bilevel.make_method("ift_exact")(damped, lam, w=w).value
    ours = bilevel.make_method("first_order")(problem, lam, w=w).value
    assert found["search/ift_cosine"] == pytest.approx(
        F.cosine_similarity(ours, exact, dim=0).item(), abs=1e-6
    )
