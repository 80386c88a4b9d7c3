# %% [markdown]
# # Three systems built on bilevel optimisation: Self-Tuning Networks, DARTS, Deep Equilibrium Models
#
# Chapter 5 computed the hypergradient of $F(\lambda) = L_\text{val}(w^*(\lambda), \lambda)$ seven
# ways. Three well-known systems are that computation under another name, each with its own
# shortcut for the expensive part, the response $dw^*/d\lambda$ of the inner solution:
#
# - **DARTS** (Liu, Simonyan & Yang 2019, *DARTS: Differentiable architecture search*): $\lambda$ is
#   the architecture weights $\alpha$, the inner problem trains the network's weights; shortcut:
#   one virtual SGD step in place of $w^*$, or none at all.
# - **Self-Tuning Networks** (MacKay, Vicol, Lorraine, Duvenaud & Grosse 2019, *Self-Tuning
#   Networks: bilevel optimization of hyperparameters using structured best-response functions*):
#   $\lambda$ is regularisation hyperparameters; shortcut: learn $w^*(\lambda)$ itself as a
#   function $\hat w(\lambda)$ and differentiate that.
# - **Deep equilibrium models** (Bai, Kolter & Koltun 2019, *Deep equilibrium models*): the inner
#   problem is the fixed-point equation $z = f(z, x; \theta)$ of one layer; shortcut: the implicit
#   function theorem at $z^*$, whatever solver found it.
#
# Each part below takes one of them to a problem whose answer is known exactly and measures how far
# the shortcut lands from it.

# %%
import os

import matplotlib.pyplot as plt
import torch

import bilevel
import playground
from bilevel import deq, stn

QUICK = os.environ.get("PLAYGROUND_QUICK", "0") == "1"  # the test suite's small budget
torch.set_num_threads(1)  # problems of tens of numbers: one thread is the fastest
OUT = "runs/tutorials/06_systems"
F64 = torch.float64

# %% [markdown]
# ## 1. DARTS on the problem of its own Figure 2
#
# DARTS relaxes the choice of an operation on each edge of a cell into a softmax over candidates
# with weights $\alpha$, and tunes $\alpha$ on validation data while the weights $w$ train. It
# never solves the inner problem: it alternates one step on $w$ with one step on $\alpha$, and
# approximates $w^*(\alpha)$ by one virtual step $w' = w - \xi \nabla_w L_\text{train}(w,
# \alpha)$, so that
#
# $$\frac{dF}{d\alpha} \approx \partial_\alpha L_\text{val}(w', \alpha)
#   - \xi\, \partial^2_{\alpha w} L_\text{train}(w, \alpha)\, \nabla_w L_\text{val}(w', \alpha),$$
#
# or, with $\xi = 0$, by $\partial_\alpha L_\text{val}(w, \alpha)$ alone (*first order*). The paper's
# Figure 2 illustrates this on a problem small enough to solve by hand, the `darts_toy` problem:
#
# $$L_\text{train} = (w - \alpha)^2, \quad L_\text{val} = \alpha w - 2\alpha + 1, \quad
#   w^*(\alpha) = \alpha, \quad F(\alpha) = (\alpha - 1)^2 .$$
#
# Where does each approximation come to rest? Once $w$ has caught up with $w^* = \alpha$:
#
# - first order: $\partial_\alpha L_\text{val} = w - 2 = 0$ at $\alpha = 2$, the starting point,
#   not the optimum: ignoring how $w$ responds to $\alpha$ leaves $\alpha$ where it started;
# - one step: $w' = w - 2\xi(w - \alpha) = \alpha$ and the product term adds $2\xi\alpha$, so
#   $\alpha - 2 + 2\xi\alpha = 0$ at $\alpha = 2/(1 + 2\xi)$, the optimum only for $\xi = 1/2$, the
#   step that reaches $w^*$ exactly (the inverse curvature of $L_\text{train}$);
# - the implicit function theorem (`ift_exact`): $F'(\alpha) = 2(\alpha - 1)$, zero at 1.
#
# We run each from $(\alpha, w) = (2, -2)$, alternating one inner step of size $\eta = 1/4$ with one
# outer step of size 0.2, as DARTS does (`alternate=1`).

# %%
toy = bilevel.make_problem("darts_toy")  # α₀ = 2, w₀ = −2, inner step η = 0.25 (one_step's default ξ)
toy_methods = {
    "first_order": (bilevel.make_method("first_order"), 2.0),
    "one_step, ξ = 0.25": (bilevel.make_method("one_step"), 2 / (1 + 2 * 0.25)),
    "one_step, ξ = 0.5": (bilevel.make_method("one_step", xi=0.5), 2 / (1 + 2 * 0.5)),
    "ift_exact": (bilevel.make_method("ift_exact"), 1.0),
}
toy_steps = 100  # the error contracts by 0.6 to 0.72 per step: 100 steps reach rounding
toy_paths, toy_final = {}, {}
for name, (method, _) in toy_methods.items():
    path = bilevel.outer_descent(toy, method, toy_steps, lr=0.2, alternate=1)
    toy_paths[name] = path
    toy_final[name] = path.lambdas[-1].item()
    print(f"{name:20s} α → {toy_final[name]:.9f}, predicted {toy_methods[name][1]:.9f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
grid = torch.linspace(-0.2, 2.2, 200, dtype=F64)
left.plot(grid, (grid - 1) ** 2, "k-", lw=1, label="F(α) = (α − 1)²")
for name, path in toy_paths.items():
    alphas = [a.item() for a in path.lambdas]
    left.plot(alphas[-1], path.losses[-1], "o", ms=7, label=f"{name}: α = {alphas[-1]:.3f}")
    right.plot(alphas, label=name)
left.set(xlabel="α", ylabel="F(α)", title="where each approximation settles")
right.set(xlabel="outer step", ylabel="α", title="α over the outer steps (w alternates)")
left.legend(fontsize=7)
right.legend(fontsize=7)
os.makedirs(OUT, exist_ok=True)
fig.savefig(f"{OUT}/06_systems.png", dpi=80)  # the figure the README shows

# %% [markdown]
# On the real search space the same first-order shortcut is what the DARTS paper reports as its
# cheaper variant (3.00% against 2.76% test error on CIFAR-10, their Table 1); what it drops is the
# implicit term $\partial^2_{\alpha w} L_\text{train} H^{-1} \nabla_w L_\text{val}$, large wherever
# $\alpha$ and $w$ are strongly coupled. The `darts` scenario runs the search on
# the 8×8 digits with any method of `bilevel` for $\alpha$, and logs the cosine of its
# hypergradient to a converged implicit-function one (`search/ift_cosine`): the digits version of
# the toy's question. Loading scikit-learn's digits and one epoch of search take longer than the
# test's quick budget, so the quick form skips this cell.

# %%
if not QUICK:
    search = playground.run(
        "darts",
        out=f"{OUT}/darts",
        overwrite=True,
        epochs=4,
        repeats=1,
        retrain_epochs=5,
        samples=4,
        power_iters=5,
        ift_iters=20,
    )
    found = search.summary
    print("derived cell:", found["search/genotype"])
    print(
        f"test accuracy {found['eval/accuracy']:.3f}; "
        f"random search {found['baseline/random_search_accuracy']:.3f}; "
        f"best single operation ({found['baseline/best_single_op']}) "
        f"{found['baseline/best_single_op_accuracy']:.3f}"
    )
    steps, cosines = search.metrics["search/ift_cosine"]
    print("cosine of first order to the IFT hypergradient, per epoch:", [round(c, 2) for c in cosines])
    # the README: it swings between −0.75 and 0.95 while the weights are far from a minimum (the
    # first 12 epochs), and settles at 0.86–0.97 after epoch 20

# %% [markdown]
# ## 2. Self-Tuning Networks: a learned best response, and its bias
#
# STN replaces the inner solve by a function $\hat w_\phi(\lambda)$ trained to *be* the best
# response near the current $\lambda$: it minimises $\mathbb{E}_{\varepsilon}\, L_\text{train}(\hat
# w_\phi(\lambda + \sigma\varepsilon), \lambda + \sigma\varepsilon)$, $\varepsilon \sim N(0, 1)$, and
# then $\lambda$ steps on $L_\text{val}(\hat w_\phi(\lambda))$ by ordinary back-propagation through
# $\hat w_\phi$. For a linear model STN's gated layer is exactly affine in $\lambda$,
# $\hat w(\lambda) = m + (\lambda - \lambda_0)\, u$, the class of the tangent of $w^*$.
#
# On `ridge` everything here has a closed form (`bilevel.stn`). The expected training loss is a
# quadratic in $(m, u)$, so a fully trained STN reaches a known $(m, u)$ (`stn.stn_optimum`); but
# because $\lambda$ is perturbed by $\sigma$, the fitted line is a *chord* of the curved $w^*$, not
# its tangent, and the $\lambda$ where $\nabla L_\text{val}(m)^\top u = 0$ (`stn.stn_lambda`) is off
# the minimiser of $F$ by an amount that grows with $\sigma$: the bias that Bae & Grosse (2020,
# *Delta-STN*) diagnose. As $\sigma \to 0$ it tends to the exact answer.
#
# Below: where a fully trained STN settles, against $\sigma$; then a real STN
# (`bilevel.SelfTuningNetwork`, Adam on the gated layer) trained at fixed $\lambda$ and fixed
# $\sigma = 1$, set against its closed-form optimum and against the exact response.

# %%
ridge = bilevel.make_problem("ridge")
low, high = ridge.lambda_range  # the minimiser of F: the root of the closed-form dF/dλ
for _ in range(60):
    middle = (low + high) / 2
    low, high = (middle, high) if ridge.hypergradient(torch.tensor(middle, dtype=F64)) < 0 else (low, middle)
lam_star = (low + high) / 2

sigmas = [1e-3, 0.25, 1.0, 2.0] if QUICK else [1e-3, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
settles = [stn.stn_lambda(ridge, scale, points=101, iterations=40) for scale in sigmas]
for scale, lam in zip(sigmas, settles):
    print(f"σ = {scale:5.3f}: a fully trained STN settles at λ = {lam:.5f} (minimiser of F {lam_star:.5f})")

at = torch.tensor(lam_star, dtype=F64)
sigma = 1.0
m, u = stn.stn_optimum(ridge, at, sigma)
exact_slope = ridge.best_response_slope(at)
budget = dict(lr=0.05, samples=16, warmup=400) if QUICK else dict(lr=0.01, samples=32, warmup=1000)
network = bilevel.SelfTuningNetwork(scale=sigma, scale_lr=0.0, inner_steps=100, seed=1, **budget)
for _ in range(1 if QUICK else 4):
    network(ridge, at)  # each call: Adam steps on ŵ at λ ± σε, then the hypergradient (unused here)
learned = network.response(at).detach()
learned_slope = torch.func.jacfwd(network.response)(at).detach()
gap = lambda a, b: ((a - b).norm() / b.norm()).item()
print(f"learned ŵ(λ*) vs closed-form m: {gap(learned, m):.3f}; dŵ/dλ vs u: {gap(learned_slope, u):.3f}")
print(f"learned dŵ/dλ vs the exact tangent dw*/dλ: {gap(learned_slope, exact_slope):.3f}")
print(f"the chord u vs the exact tangent dw*/dλ: {gap(u, exact_slope):.3f} (σ = {sigma})")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
left.semilogx(sigmas, settles, "o-", label="where a fully trained STN settles")
left.axhline(lam_star, color="k", ls=":", label=f"minimiser of F, {lam_star:.4f}")
left.set(xlabel="perturbation σ", ylabel="λ", title="STN's bias grows with σ")
left.legend(fontsize=8)
offsets = torch.linspace(-2.5, 2.5, 101, dtype=F64)
exact_w = torch.func.vmap(ridge.inner_solution)(at + offsets)
direction = u / u.norm()  # follow w along the chord's direction
right.plot(at + offsets, exact_w @ direction, "k-", label="exact w*(λ)")
tangent = ridge.inner_solution(at) + offsets[:, None] * exact_slope
right.plot(at + offsets, tangent @ direction, color="grey", ls="-.", lw=1, label="its tangent at λ*")
right.plot(
    at + offsets, (m + offsets[:, None] * u) @ direction, "C1--", label=f"closed-form STN, σ = {sigma}"
)
right.plot(at + offsets, network.responses(at + offsets).detach() @ direction, "C0:", label="trained STN")
right.set(xlabel="λ", ylabel="w projected on u/‖u‖", title="a chord, not a tangent")
right.legend(fontsize=8)

# %% [markdown]
# The `stn` scenario runs the full method on a real network: an MLP of gated layers on the digits,
# with its per-layer dropout rates and weight decay tuned during one training run (MacKay et al.
# 2019, Algorithm 1), against random search with the same number of training steps. There is no
# closed form there; the README reports STN ahead of random search at equal steps on three seeds,
# but behind a network retrained from scratch at STN's final values on two of them. The full form
# of this notebook also runs STN as the outer method on `ridge`, where the README measures
# λ = 2.937 against the minimiser 2.921 (σ settles near 0.16).

# %%
if not QUICK:
    tuned = playground.run(
        "bilevel", out=f"{OUT}/ridge_stn", overwrite=True, problem="ridge", method="stn", compare=False
    )
    on_ridge = tuned.summary
    print(
        f"STN on ridge: λ = {on_ridge['outer/lambda']:.4f} (minimiser {lam_star:.4f}; a fully trained STN "
        f"at its σ = {on_ridge['best_response/sigma']:.3f}: {on_ridge['reference/stn_lambda']:.4f}); "
        f"cos(dŵ/dλ, dw*/dλ) = {on_ridge['best_response/jacobian_cosine']:.6f}"
    )
    assert abs(on_ridge["outer/lambda"] - lam_star) < 0.01 * lam_star  # the scenario test's 1%
    digits = playground.run(
        "stn", out=f"{OUT}/stn", overwrite=True, steps=400, warmup=100, trials=4, fixed_baseline=False
    )
    d = digits.summary
    print(
        f"STN on the digits: test accuracy {d['eval/accuracy']:.3f} against random search "
        f"{d['baseline/random_search_accuracy']:.3f}; final dropout "
        + ", ".join(f"{d[f'hyper/dropout_{i}']:.2f}" for i in range(3))
        + f"; weight decay {d['hyper/weight_decay']:.1e}"
    )

# %% [markdown]
# ## 3. Deep equilibrium models: the implicit function theorem as a layer
#
# A DEQ layer outputs the fixed point $z^* = f(z^*, x; \theta)$, found by a root solver
# (fixed-point iteration, Anderson acceleration, Broyden's method). Differentiating the identity
# $z^* = f(z^*, x; \theta)$ gives $dz^*/d\theta = (I - J)^{-1} \partial_\theta f$ with $J = \partial
# f/\partial z$ at $z^*$: the same structure as the implicit hypergradient, with $I - J$ in the role
# of the Hessian. In reverse mode one solves the adjoint system once,
#
# $$(I - J^\top)\, u = \frac{\partial L}{\partial z^*}, \qquad
#   \frac{dL}{d\theta} = \Big(\frac{\partial f}{\partial \theta}\Big)^{\!\top} u,$$
#
# and the memory does not grow with the number of forward iterations, whereas back-propagating
# through the solver (`unrolled`) stores them all. The phantom gradient (Geng et al. 2021) runs
# only $k$ damped steps back from $z^*$, a truncated Neumann series of the adjoint.
#
# On the `linear` task, $f(z, x) = Wz + Ux + b$ with $\rho(W) = 0.9$, the fixed point $z^* = (I -
# W)^{-1}(Ux + b)$ and the gradient are closed forms. The `deq` scenario measures every solver and
# every backward against them in one run.

# %%
linear = playground.run("deq", out=f"{OUT}/deq_linear", overwrite=True, task="linear", plots=False)
summary = linear.summary
for solver in ("fixed_point", "anderson", "broyden"):
    nfe, error = summary[f"solver/{solver}_nfe"], summary[f"solver/{solver}_forward_error"]
    print(f"forward {solver:12s} evaluations of f to a residual of 1e-12: {nfe:4d}, error in z* {error:.1e}")
for key, value in summary.items():
    if key.startswith("backward/"):
        print(f"backward {key[len('backward/') : -len('_grad_error')]:20s} gradient error {value:.1e}")

# %% [markdown]
# A nonlinear layer has no closed form, so we check the implicit gradient two other ways: against
# back-propagation through the solver's own iterations, and against a central finite difference of
# the loss along a random direction $d$ of the parameters, $\big(L(\theta + \varepsilon d) -
# L(\theta - \varepsilon d)\big) / 2\varepsilon$, each $L$ from a forward solve to a residual of
# $10^{-13}$. The cell is $f(z, x) = W_2^\top \mathrm{ReLU}(W_1 z + Ux + b)$ (`deq.ReluCell`) in
# float64, scaled so that $\rho(J) \approx 0.8$ at $z^*$. The residual trace shows why the solver
# matters: plain iteration contracts the error by $\rho(J)$ per evaluation (the dashed line), while
# Anderson and Broyden, which build a model of $J$ from past iterates, need a fraction of the
# evaluations; the gap widens as $\rho \to 1$ (on the linear task, $\rho = 0.9$: 253 against 48
# and 21).

# %%
generator = torch.Generator().manual_seed(0)
cell = deq.ReluCell(dim=10, inputs=4, width=20, scale=0.8, generator=generator, dtype=F64)  # ρ(J) ≈ 0.8
x = torch.randn(8, 4, generator=generator, dtype=F64)
target = torch.randn(8, 10, generator=generator, dtype=F64)
z0 = torch.zeros(8, 10, dtype=F64)
tight = deq.anderson(tol=1e-13, max_iter=300)
loss_of = lambda z: 0.5 * (z - target).square().sum()


def gradient(backward):
    cell.zero_grad()
    z, solve = deq.equilibrium(cell, x, z0, tight, backward)
    loss_of(z).backward()
    return [p.grad.clone() for p in cell.parameters()], solve


implicit, solve = gradient(deq.ift("exact"))
through_solver, _ = gradient(deq.unrolled())
phantom, _ = gradient(deq.phantom(steps=5, damping=0.5))
radius = deq.spectral_radius(cell, x, solve.z).max().item()  # the slowest example sets the rate
flat = lambda tensors: torch.cat([t.reshape(-1) for t in tensors])
direction = torch.randn(flat(implicit).shape, generator=generator, dtype=F64)
eps = 1e-5


def loss_at(shift):
    with torch.no_grad():
        offset = 0
        for p in cell.parameters():
            p.add_(shift[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        value = loss_of(tight(lambda z: cell(z, x), z0).z).item()
        offset = 0
        for p in cell.parameters():
            p.sub_(shift[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    return value


finite_difference = (loss_at(eps * direction) - loss_at(-eps * direction)) / (2 * eps)
directional = flat(implicit) @ direction
print(
    f"Anderson: residual {solve.residual:.1e} after {solve.nfe} evaluations of f; ρ(J) at z* = {radius:.3f}"
)
print(f"implicit vs unrolled: relative difference {gap(flat(through_solver), flat(implicit)):.1e}")
print(f"directional derivative: implicit {directional:.10f}, finite difference {finite_difference:.10f}")
print(f"phantom (k = 5, τ = 0.5) vs implicit: relative difference {gap(flat(phantom), flat(implicit)):.2f}")

fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
for name in ("fixed_point", "anderson", "broyden"):
    trace = deq.FORWARD_SOLVERS[name](tol=1e-13, max_iter=300)(lambda z: cell(z, x), z0).trace
    ax.semilogy(range(1, len(trace) + 1), trace, label=f"{name} ({len(trace)} evaluations)")
    if name == "fixed_point":
        guide = [trace[0] * radius**k for k in range(len(trace))]
        ax.semilogy(range(1, len(trace) + 1), guide, "k--", lw=0.8, label="ρ(J)^k")
ax.set(xlabel="evaluations of f", ylabel="‖f(z) − z‖ / ‖f(z)‖", title="ReLU DEQ: forward solvers")
ax.legend(fontsize=8)

# %% [markdown]
# ## Known answers
#
# - **DARTS' toy** (Liu et al. 2019, Figure 2; fixed points derived above): first order settles at
#   $\alpha = 2$, one step at $2/(1 + 2\xi)$, i.e. $4/3$ for $\xi = 1/4$ and $1$ for $\xi = 1/2$, the
#   implicit function theorem at the optimum 1. The alternating iteration is linear and its error
#   contracts by at most 0.72 per step (measured from the paths), so after 100 steps each method is
#   within $10^{-12}$ of its fixed point; we allow $10^{-6}$.
# - **STN**: as $\sigma \to 0$ the closed-form STN settles at the minimiser of $F$ (to $10^{-5}$ at
#   $\sigma = 10^{-3}$, the bias being $O(\sigma^2)$) and moves off it monotonically with $\sigma$.
#   The trained slope must be closer to the closed-form chord than to the exact tangent, and within
#   half the chord's distance to the tangent (27% at $\sigma = 1$) of the chord: Adam's noise at
#   these budgets leaves 2–5% (quick) and about 1.5% (full).
# - **DEQ**: the `linear` task's gradients against the closed form to $10^{-9}$ (README: $5 \cdot
#   10^{-13}$ for the implicit ones), and on the ReLU cell the implicit gradient against unrolling
#   (to $10^{-8}$, the solve's tolerance times the conditioning of $I - J$) and against a central
#   difference ($O(\varepsilon^2)$ with $\varepsilon = 10^{-5}$, plus the solves' $10^{-13}$ over
#   $\varepsilon$: $10^{-6}$ relative).

# %%
print(
    "known answer: DARTS toy fixed points α = 2 (first order), 4/3 (one step, ξ = 1/4), 1 (ξ = 1/2), "
    "1 (IFT) (Liu et al. 2019, Fig. 2); ours: "
    + ", ".join(f"{name} {value:.7f}" for name, value in toy_final.items())
)
print(
    f"known answer: STN at σ → 0 settles at the minimiser λ* = {lam_star:.6f} (root of the closed-form "
    f"dF/dλ); ours (closed-form STN, σ = 1e-3): {settles[0]:.6f}"
)
print(
    "known answer: linear DEQ z* = (I − W)⁻¹(Ux + b), dL/dθ = (∂f/∂θ)ᵀ(I − W)⁻ᵀ ∂L/∂z* (closed forms); "
    f"ours: z* error {summary['deq/forward_error']:.1e}, gradient error IFT "
    f"{summary['backward/ift_exact_grad_error']:.1e}, unrolled {summary['backward/unrolled_grad_error']:.1e}"
)
for name, (_, predicted) in toy_methods.items():
    assert abs(toy_final[name] - predicted) < 1e-6, (name, toy_final[name], predicted)
assert abs(settles[0] - lam_star) < 1e-5
assert all(a > b for a, b in zip(settles, settles[1:])) and settles[-1] < lam_star - 0.5  # monotone
assert gap(learned_slope, u) < min(gap(learned_slope, exact_slope), gap(u, exact_slope) / 2)
assert gap(learned, m) < 0.1
assert summary["deq/forward_error"] < 1e-9
assert all(v < 1e-9 for k, v in summary.items() if k.startswith("backward/") and "k5" not in k)
assert gap(flat(through_solver), flat(implicit)) < 1e-8
assert abs(finite_difference - directional) < 1e-6 * abs(directional)
