import pytest
import torch

from metalearn.icl import (
    GPT,
    MODELS,
    LinearSelfAttention,
    TaskDistribution,
    gd,
    gd_plus_plus,
    lsa_gd,
    make_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tasks(n, dim=5, context=7, seed=0):
    tasks = TaskDistribution(dim, context).sample(n, torch.Generator().manual_seed(seed))
    return type(tasks)(*(t.double() for t in tasks))


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_lsa_gd_is_gd(steps):
    tasks = _tasks(64)
    model = lsa_gd(5, steps, lr=0.9, context=7, dtype=torch.float64)
    expected = gd(0.9, steps)(tasks.xs, tasks.ys, tasks.xq)
    assert (model(tasks.xs, tasks.ys, tasks.xq) - expected).abs().max() < 1e-12  # float64
    model32 = lsa_gd(5, steps, lr=0.9, context=7)
    prediction32 = model32(*(t.float() for t in tasks[:3])).double()
    assert (prediction32 - expected).abs().max() < 1e-5 * expected.abs().max()


def test_lsa_gd_with_gamma_is_gd_plus_plus():
    tasks = _tasks(64)
    model = lsa_gd(5, 3, lr=0.9, context=7, gamma=0.04, dtype=torch.float64)
    expected = gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, 0.9, 0.04, 3)
    assert torch.allclose(model(tasks.xs, tasks.ys, tasks.xq), expected, atol=1e-12, rtol=0)


def _explicit_attention(model, xs, ys, xq):
    """Token by token: e_j += Σ_h P W_V Σ_i e_i (e_iᵀ W_Kᵀ W_Q e_j), keys and values from context."""
    tokens = torch.cat([torch.cat([xs, ys[..., None]], -1), torch.cat([xq, 0 * xq[:, :1]], -1)[:, None]], 1)
    n = xs.shape[1]
    for layer in range(model.w_q.shape[0]):
        new = tokens.clone()
        for j in range(n + 1):
            for h in range(model.w_q.shape[1]):
                q = model.w_q[layer, h] @ tokens[:, j].T  # (D, B)
                for i in range(n):
                    k, v = model.w_k[layer, h] @ tokens[:, i].T, model.w_v[layer, h] @ tokens[:, i].T
                    new[:, j] += (model.p[layer, h] @ (v * (k * q).sum(0))).T
        tokens = new
    return -tokens[:, -1, -1]


def test_lsa_matches_explicit_attention():
    tasks = _tasks(3, dim=3, context=4)
    model = LinearSelfAttention(
        3, layers=2, heads=2, init_scale=0.5, generator=torch.Generator().manual_seed(0)
    ).double()
    with torch.no_grad():
        expected = _explicit_attention(model, tasks.xs, tasks.ys, tasks.xq)
        assert torch.allclose(model(tasks.xs, tasks.ys, tasks.xq), expected, atol=1e-12)
        assert len(model.query_states(tasks.xs, tasks.ys, tasks.xq)) == 3


def test_same_seed_same_weights():
    a, b = (LinearSelfAttention(4, 2, 3, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    g1, g2 = (GPT(4, 6, 2, 2, 16, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(g1.parameters(), g2.parameters()))


def test_gpt_is_causal_and_predicts_every_prefix():
    tasks = _tasks(4, dim=3, context=6)
    model = GPT(3, 6, layers=2, heads=2, width=16, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        all_preds = model.predict_all(tasks.xs, tasks.ys, tasks.xq)  # (B, 7)
        assert torch.allclose(all_preds[:, -1], model(tasks.xs, tasks.ys, tasks.xq), atol=1e-12)
        # the prediction of y_4 from 3 examples is the query prediction of the 3-example prompt
        short = model(tasks.xs[:, :3], tasks.ys[:, :3], tasks.xs[:, 3])
        assert torch.allclose(all_preds[:, 3], short, atol=1e-12)
        changed = tasks.ys.clone()
        changed[:, 4:] += 1.0
        later = model.predict_all(tasks.xs, changed, tasks.xq)
        assert torch.allclose(later[:, :5], all_preds[:, :5], atol=1e-12)
        assert not torch.allclose(later[:, 5:], all_preds[:, 5:])
        assert len(model.query_states(tasks.xs, tasks.ys, tasks.xq)) == 3


def test_gpt_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="width=10"):
        GPT(3, 4, heads=4, width=10)


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_models_by_name_are_their_factories():
    assert list(MODELS) == ["lsa", "lsa_gd", "gpt"]
    seed = lambda: torch.Generator().manual_seed(5)
    assert _same_weights(
        make_model("lsa", dim=4, layers=2, heads=3, generator=seed()),
        LinearSelfAttention(4, 2, 3, generator=seed()),
    )
    assert _same_weights(make_model("lsa_gd", dim=3, layers=2, lr=0.5, context=4), lsa_gd(3, 2, 0.5, 4))
    assert _same_weights(
        make_model("gpt", dim=2, context=3, layers=1, heads=2, width=8, generator=seed()),
        GPT(2, 3, 1, 2, 8, seed()),
    )
    assert list(MODELS.options("gpt")) == ["dim", "context", "layers", "heads", "width"]  # set by name
    assert list(MODELS.keywords("gpt")) == ["dim", "context", "layers", "heads", "width", "generator"]


def test_make_model_refuses_unknown_names_and_options():
    with pytest.raises(
        ValueError, match="^unknown model 'lstm'; valid: lsa, lsa_gd, gpt, or module:factory$"
    ):
        make_model("lstm", dim=3)
    valid = "dim, context, layers, heads, width, generator"
    with pytest.raises(ValueError, match=f"^model 'gpt' takes no option 'init_scale'; valid: {valid}$"):
        make_model("gpt", dim=3, context=4, init_scale=0.1)
