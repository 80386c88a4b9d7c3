"""The gradient field and its Jacobian products, checked against hand-derived formulas."""

import pytest
import torch
from torch.func import jacfwd

import games

F64 = torch.float64


def three_player_game() -> games.Game:
    """L₁ = x·(Wy) + ½‖x‖², L₂ = y·v x₀ − ‖y‖² w₀, L₃ = w₀ y₀ x₁ + w₀²; y is a 2×2 matrix."""
    weight = torch.tensor([[1.0, 2.0, -1.0, 0.5], [0.0, 1.0, 3.0, -2.0]], dtype=F64)

    def losses(p):
        x, y, w = p[0], p[1].reshape(-1), p[2]
        return torch.stack(
            [
                x @ weight @ y + 0.5 * x @ x,
                (y * torch.arange(4.0, dtype=F64)).sum() * x[0] - (y @ y) * w[0],
                w[0] * y[0] * x[1] + w[0] ** 2,
            ]
        )

    return games.Game(("x", "y", "w"), ((2,), (2, 2), (1,)), losses)


def test_field_is_each_players_own_gradient():
    game = three_player_game()
    z = torch.linspace(-1.0, 1.2, game.dim, dtype=F64)
    x, y, w = game.split(z)
    weight = torch.tensor([[1.0, 2.0, -1.0, 0.5], [0.0, 1.0, 3.0, -2.0]], dtype=F64)
    expected = torch.cat(
        [
            weight @ y.reshape(-1) + x,
            torch.arange(4.0, dtype=F64) * x[0] - 2 * y.reshape(-1) * w[0],
            (y.reshape(-1)[0] * x[1] + 2 * w[0]).reshape(1),
        ]
    )
    torch.testing.assert_close(game.field(z), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("build", [games.dense_curvature, games.matrix_free_curvature])
def test_curvature_products_match_the_jacobian(build):
    game = three_player_game()
    z = torch.linspace(-0.7, 0.9, game.dim, dtype=F64)
    jacobian = jacfwd(game.field)(z)
    off_diagonal = jacobian.clone()
    for block in game.blocks():
        off_diagonal[block, block] = 0
    v = torch.sin(torch.arange(game.dim, dtype=F64))
    curv = build(game, z)
    torch.testing.assert_close(curv.field, game.field(z))
    torch.testing.assert_close(curv.loss_grads, jacfwd(game.losses)(z))
    torch.testing.assert_close(curv.h(v), jacobian @ v)
    torch.testing.assert_close(curv.h_t(v), jacobian.T @ v)
    torch.testing.assert_close(curv.h_o(v), off_diagonal @ v)
    torch.testing.assert_close(curv.h_o_t(v), off_diagonal.T @ v)


def test_split_and_replace_block_keep_shapes():
    game = three_player_game()
    z = torch.arange(game.dim, dtype=F64)
    assert [p.shape for p in game.split(z)] == [(2,), (2, 2), (1,)]
    new = game.replace_block(z, 1, torch.zeros(4, dtype=F64))
    assert new.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 6.0]


def test_a_game_needs_one_shape_per_player():
    with pytest.raises(ValueError, match="one shape each"):
        games.Game(("x", "y"), ((1,),), lambda p: p[0])
