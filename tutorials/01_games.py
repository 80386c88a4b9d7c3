# %% [markdown]
# # Differentiable games: why simultaneous gradient descent spirals, and what fixes it
#
# Train two models against each other (a GAN's generator and discriminator, two agents, a
# robust model and its adversary) and the natural first algorithm is to let each one take a
# gradient step on its own loss at the same time. On the simplest zero-sum game there is, this
# never converges, whatever the learning rate. This chapter shows why, with one exact
# calculation, and then four repairs: extragradient, optimistic gradient descent, consensus
# optimisation and (briefly) negative momentum. One tool explains all of them: the eigenvalues
# of the Jacobian of the update map at the equilibrium, which the `game` scenario reports next
# to the rate it measures.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import games
import playground

QUICK = os.environ.get("PLAYGROUND_QUICK", "0") == "1"  # the test suite's small budget

OUT = "runs/tutorials/01_games"
STEPS = 20 if QUICK else 150  # updates per run
LRS = [0.1, 0.3] if QUICK else [0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.55, 0.7, 0.9]
DYNAMICS = ["sim_gd", "extragradient", "optimistic", "consensus"]
START = (1.0, 0.0)  # (x, y)
SHOWN = 20  # steps drawn in the trajectory plots, so the full form's spirals stay readable

# %% [markdown]
# ## The bilinear game and its rotating field
#
# Player $x$ minimises $f(x, y) = xy$, player $y$ maximises it (its loss is $-xy$); the zoo's
# `bilinear` game with `dim=1`. The only equilibrium is $z^* = (0, 0)$. Each player's gradient
# of its own loss, stacked, is the *simultaneous gradient*
#
# $$\xi(z) = \begin{pmatrix} \partial_x f \\ -\partial_y f \end{pmatrix}
# = \begin{pmatrix} y \\ -x \end{pmatrix} = Jz, \qquad
# J = \begin{pmatrix} 0 & 1 \\ -1 & 0 \end{pmatrix}.$$
#
# $\xi$ is always perpendicular to $z$ ($\langle z, \xi\rangle = xy - yx = 0$), so the
# continuous-time flow $\dot z = -\xi(z)$ goes round circles centred on the equilibrium and
# never gets closer. Simultaneous gradient descent, $z_{t+1} = z_t - \eta\,\xi(z_t)$, follows the
# tangent of that circle for a finite step, and a tangent step always lands outside the circle:
# by Pythagoras,
#
# $$\|z_{t+1}\|^2 = \|z_t\|^2 + \eta^2\|Jz_t\|^2 = (1 + \eta^2)\,\|z_t\|^2 .$$
#
# So the distance grows by exactly $\sqrt{1 + \eta^2}$ at *every* step, for every $\eta > 0$:
# a small learning rate only slows the outward spiral down. At $\eta = 0.3$ that is
# $\sqrt{1.09} \approx 1.044$, and each step turns by $\arctan\eta \approx 0.29$ rad.
#
# One `playground.sweep` runs everything this chapter looks at: four dynamics at a few learning
# rates, one run directory each, all from $z_0 = (1, 0)$. We look at simultaneous GD first.

# %%
sweep = playground.sweep(
    "game",
    grid={"dynamics": DYNAMICS, "lr": LRS},
    out=f"{OUT}/sweep",
    overwrite=True,
    game="bilinear",
    steps=STEPS,
    init=START,
    plots=False,
)
assert set(sweep.statuses) == {"finished"}, sweep.statuses
runs = {(p["dynamics"], float(p["lr"])): r for p, r in zip(sweep.points, sweep.results)}

# %%
sim = runs["sim_gd", 0.3]
steps, path = sim.metrics["params"]  # (T + 1,), (T + 1, 2)
_, dist = sim.metrics["dist"]
print(f"distance {dist[0]:.3f} -> {dist[-1]:.3f} in {steps[-1]} steps")
print("per-step ratio, first and last:", dist[1] / dist[0], dist[-1] / dist[-2], "closed form", np.sqrt(1.09))
assert np.allclose(dist[1:] / dist[:-1], np.sqrt(1 + 0.3**2), rtol=1e-12, atol=0)

fig, ax = plt.subplots(figsize=(4.5, 4.5))
path = path[: SHOWN + 1]
reach = 1.1 * np.abs(path).max()
grid = np.linspace(-reach, reach, 15)
gx, gy = np.meshgrid(grid, grid)
ax.quiver(gx, gy, -gy, gx, color="grey", alpha=0.5)  # -ξ = (-y, x): the direction GD moves
ax.plot(path[:, 0], path[:, 1], "o-", ms=3, label=f"simultaneous GD, η = 0.3, {SHOWN} steps")
ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, ls="--", color="k", label="‖z‖ = 1, the flow's orbit"))
ax.set(xlabel="x (minimises xy)", ylabel="y (maximises xy)", aspect="equal", title="bilinear game")
ax.legend(loc="lower left", fontsize=8)

# %% [markdown]
# The grey arrows are $-\xi$: they circle the origin, and the iterates (blue) leave the dashed
# unit circle at once and spiral outwards. Every step's ratio equals $\sqrt{1+\eta^2}$ to
# rounding, which the cell asserts to a relative $10^{-12}$.
#
# ## Four repairs, and their rates
#
# Each repair changes the linear map $z \mapsto Mz$ that one update applies on this game
# (writing $J^2 = -I$ whenever it appears):
#
# - **Extragradient** (Korpelevich 1976, *The extragradient method for finding saddle points
#   and other problems*): step to $z^{1/2} = z - \eta\xi(z)$, then take the step with the field
#   read *there*, $z^+ = z - \eta\xi(z^{1/2})$. So $M = I - \eta J + \eta^2 J^2
#   = (1 - \eta^2) I - \eta J$, whose factor is $\sqrt{(1-\eta^2)^2 + \eta^2}
#   = \sqrt{1 - \eta^2 + \eta^4}$: below 1 for $0 < \eta < 1$. The field read at the
#   look-ahead point is the tangent at a point further round the circle, which, seen from $z$,
#   points slightly inwards.
# - **Optimistic GD** (Popov 1980; Daskalakis, Ilyas, Syrgkanis & Zeng 2018, *Training GANs
#   with Optimism*): $z_{t+1} = z_t - 2\eta\xi(z_t) + \eta\xi(z_{t-1})$, an extrapolation from
#   the last gradient that costs one field evaluation per step instead of two. It has memory,
#   so its rate is that of a $4 \times 4$ map on $(z_t, \xi_{t-1})$; its eigenvalues solve
#   $\lambda^2 - (1 - 2\eta\mu)\lambda - \eta\mu = 0$ with $\mu = \pm i$, the largest of
#   modulus $\sqrt{(1 + \sqrt{1 - 4\eta^2})/2}$ for $\eta \le 1/2$ (converging for
#   $\eta < 1/\sqrt3$).
# - **Consensus optimisation** (Mescheder, Nowozin & Geiger 2017, *The Numerics of GANs*):
#   also descend $\tfrac12\|\xi\|^2$, i.e. follow $\xi + \gamma H^\top\xi$ with
#   $H = \partial\xi/\partial z$. Here $H^\top\xi = J^\top J z = z$, a pull straight towards
#   the equilibrium, so $M = (1 - \eta\gamma)I - \eta J$ with factor
#   $\sqrt{(1-\eta\gamma)^2 + \eta^2}$ ($\gamma = 1$ below, the default).
#
# Below, the four runs of the sweep at $\eta = 0.3$: their paths, and their distances to the
# equilibrium on a log scale.

# %%
fig, axes = plt.subplots(1, 5, figsize=(17, 3.6), layout="constrained")
for ax, name in zip(axes, DYNAMICS):
    _, path = runs[name, 0.3].metrics["params"]
    ax.plot(path[: SHOWN + 1, 0], path[: SHOWN + 1, 1], ".-", ms=3, lw=0.8)
    ax.plot(*START, "ko", ms=4)
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, ls="--", color="grey"))
    ax.set(title=f"{name}, η = 0.3, first {SHOWN} steps", xlabel="x", ylabel="y", aspect="equal")
    steps, dist = runs[name, 0.3].metrics["dist"]
    axes[-1].semilogy(steps, dist, label=name)
axes[-1].set(xlabel="step", ylabel="distance to (0, 0)", title="‖z_t − z*‖, η = 0.3")
axes[-1].legend(fontsize=8)

# %% [markdown]
# Only simultaneous GD leaves the unit circle outwards; the other three spiral in, consensus
# fastest at this $\eta$ because its extra term pulls radially. On the log scale, the memoryless
# methods' distances are straight lines from the first step (their map is a scaled rotation, so
# every step shrinks by the same factor). Optimistic GD's first step is plain GD (it has no
# previous gradient yet) and its curve becomes straight only once the second, faster-decaying
# eigenvalue of its $4 \times 4$ map has died out.
#
# ## The Jacobian view
#
# The general tool (Mescheder et al. 2017): write any dynamics as a map $F$ on its state, and
# expand around a fixed point $z^*$: $z_{t+1} - z^* \approx M(z_t - z^*)$ with
# $M = \partial F/\partial z\,(z^*)$. The distance then behaves like $\rho(M)^t$, $\rho$ the
# spectral radius, the largest $|\lambda|$ over $M$'s eigenvalues. For simultaneous GD,
# $M = I - \eta H$, whose eigenvalues are $1 - \eta\mu$ for each eigenvalue $\mu$ of the game
# Jacobian $H$, and
#
# $$|1 - \eta\mu| < 1 \iff \eta < \frac{2\,\mathrm{Re}\,\mu}{|\mu|^2}.$$
#
# An eigenvalue close to the imaginary axis (strong rotation, weak attraction) admits only a
# tiny $\eta$, and one on it, as $\mu = \pm i$ here, admits none: this is the general reason
# simultaneous GD fails near equilibria where rotation dominates. Consensus
# shifts the eigenvalues of the field to $\gamma \pm i$, into the right half-plane;
# extragradient and optimism bend the map rather than the field. Each run's summary has
# `eig/field` (the $\mu$), `eig/update` (the eigenvalues of $M$, from `games.update_jacobian`),
# `rate/predicted` $= \rho(M)$ and `rate/measured`, the geometric-mean ratio of the distance
# over the last tenth of the steps. The library computes the same for any dynamics, with
# memory included: negative momentum with alternating updates (Gidel et al. 2019, *Negative
# Momentum for Improved Game Dynamics*) converges at $\eta = 0.5$, $\beta = -0.5$, by the
# factor $\approx 0.9625$ that REFERENCES.md lists from that paper, while the same momentum
# with simultaneous updates diverges.

# %%
game = games.bilinear()
print("eigenvalues of H = ∂ξ/∂z:", games.eigenvalues(games.field_jacobian(game, game.equilibrium)).tolist())
fig, ax = plt.subplots(figsize=(4.5, 4.5))
theta = np.linspace(0, 2 * np.pi, 200)
ax.plot(np.cos(theta), np.sin(theta), "k--", lw=0.7)
for k, (name, marker) in enumerate(zip(DYNAMICS, "osD^")):
    summary = runs[name, 0.3].summary
    eig = np.array(summary["eig/update"])  # [[re, im], ...]
    label = f"{name}: ρ = {summary['rate/predicted']:.4f}"
    ax.plot(eig[:, 0], eig[:, 1], marker, ms=9 - 1.5 * k, mfc="none", color=f"C{k}", ls="", label=label)
    print(f"{name:14s} eig/update {np.round(eig, 4).tolist()}")
ax.set(xlabel="Re λ", ylabel="Im λ", aspect="equal", title="eigenvalues of the update map, η = 0.3")
ax.legend(fontsize=7, loc="lower left")

momentum_rate = {
    alternating: games.predicted_rate(game, games.momentum(0.5, beta=-0.5, alternating=alternating))
    for alternating in (True, False)
}
alternating, simultaneous = momentum_rate[True], momentum_rate[False]
print(f"momentum β = -0.5, η = 0.5: alternating ρ = {alternating:.4f}, simultaneous ρ = {simultaneous:.4f}")
assert abs(alternating - 0.9625) < 6e-4  # Gidel et al. 2019, as tabulated in REFERENCES.md

# %% [markdown]
# Points inside the dashed unit circle are contracting directions. Simultaneous GD's pair
# $1 \mp 0.3i$ lies outside; extragradient's $(1 - \eta^2) \mp \eta i$ and consensus's
# $(1 - \eta\gamma) \mp \eta i$ inside. Optimistic GD has four: the slow pair sets the rate,
# the fast pair near the origin is the transient seen in its distance curve.
#
# ## Rates across learning rates: predicted against measured
#
# Now the whole sweep: the closed forms as curves, each run's `rate/predicted` (circles) and
# `rate/measured` (crosses). For optimistic GD the curve is the largest root of its
# characteristic equation, which also covers $\eta > 1/2$, where the closed form above stops.

# %%
eta = np.linspace(0.01, 1.0, 200)
opt_roots = [((1 - 2j * eta) + sign * np.sqrt(1 - 4 * eta**2 + 0j)) / 2 for sign in (1, -1)]
closed = {
    "sim_gd": np.sqrt(1 + eta**2),
    "extragradient": np.sqrt(1 - eta**2 + eta**4),
    "optimistic": np.maximum(*(np.abs(r) for r in opt_roots)),
    "consensus": np.sqrt((1 - eta) ** 2 + eta**2),
}
fig, ax = plt.subplots(figsize=(6, 4))
ax.axhline(1.0, color="k", lw=0.6)
for k, name in enumerate(DYNAMICS):
    ax.plot(eta, closed[name], color=f"C{k}", lw=1, label=f"{name} (closed form)")
    predicted = [runs[name, lr].summary["rate/predicted"] for lr in LRS]
    measured = [runs[name, lr].summary["rate/measured"] for lr in LRS]
    ax.plot(LRS, predicted, "o", mfc="none", color=f"C{k}")
    ax.plot(LRS, measured, "x", color=f"C{k}")
ax.set(xlabel="learning rate η", ylabel="factor per step", ylim=(0.4, 1.4), title="o predicted, x measured")
ax.legend(fontsize=8)

worst = max(
    abs(runs[name, lr].summary["rate/measured"] / runs[name, lr].summary["rate/predicted"] - 1)
    for name in DYNAMICS
    for lr in LRS
)
print(f"largest relative gap between measured and predicted rates: {worst:.1e}")
assert worst < 1e-6
os.makedirs(OUT, exist_ok=True)
fig.savefig(f"{OUT}/01_games.png", dpi=80)  # the figure the README shows

# %% [markdown]
# Read the figure from left to right. Simultaneous GD is above 1 everywhere. Extragradient
# dips to its best factor $\sqrt3/2 \approx 0.866$ at $\eta = 1/\sqrt2$ and returns to 1 at
# $\eta = 1$. Optimistic GD is best at $\eta = 1/2$ ($1/\sqrt2 \approx 0.707$) and diverges
# beyond $1/\sqrt3 \approx 0.577$: one gradient evaluation per step buys a narrower range of
# stable step sizes. Consensus with $\gamma = 1$ is fastest for small $\eta$, since its pull
# towards the equilibrium is first order in $\eta$, where extragradient's is second order.
# Circles and crosses coincide: over the last tenth of the steps the measured ratio equals the
# spectral radius to better than $10^{-6}$ (the asserted bound; for the memoryless methods the
# two agree to rounding, since their map is a scaled rotation and every step has the same
# ratio).
#
# ## Known answer
#
# At $\eta = 0.1$ the closed forms give $\sqrt{1.01} = 1.004988$ for simultaneous GD and
# $\sqrt{0.9901} = 0.995038$ for extragradient (the README's Python example quotes 0.995038). On
# this game both maps are exact scaled rotations, so the measured ratio carries only float64
# rounding, of order $10^{-16}$ per step: we assert a relative $10^{-12}$ against the closed
# forms, which holds however few steps the run takes, and so also in the quick form.

# %%
ours = {name: runs[name, 0.1].summary["rate/measured"] for name in ("sim_gd", "extragradient")}
known = {"sim_gd": np.sqrt(1 + 0.1**2), "extragradient": np.sqrt(1 - 0.1**2 + 0.1**4)}
print(
    f"known answer: at η = 0.1, sim_gd √(1+η²) = {known['sim_gd']:.6f} and extragradient "
    f"√(1−η²+η⁴) = {known['extragradient']:.6f} (closed forms; README: 0.995038); "
    f"ours (rate/measured): {ours['sim_gd']:.6f} and {ours['extragradient']:.6f}"
)
for name in ours:
    assert abs(ours[name] / known[name] - 1) < 1e-12, (name, ours[name], known[name])
assert round(ours["sim_gd"], 6) == 1.004988 and round(ours["extragradient"], 6) == 0.995038
