# %% [markdown]
# # Bilevel optimisation: hypergradients side by side
#
# A hyperparameter $\lambda$ is tuned on validation data, while the weights $w$ that it shapes are
# trained on training data. That is a *bilevel* problem:
#
# $$\min_\lambda F(\lambda) = L_\text{val}(w^*(\lambda), \lambda), \qquad
#   w^*(\lambda) = \arg\min_w L_\text{train}(w, \lambda).$$
#
# Gradient descent on $\lambda$ needs the *hypergradient*. By the chain rule
#
# $$\frac{dF}{d\lambda} = \partial_\lambda L_\text{val}
#   + \Big(\frac{dw^*}{d\lambda}\Big)^{\!\top} \nabla_w L_\text{val},$$
#
# and everything hard sits in $dw^*/d\lambda$, the response of a whole training run to its
# hyperparameter. This chapter computes it seven ways on a problem whose answer is known in closed
# form, measures each against that answer and counts what each costs; tunes $\lambda$ with it; and
# ends with a case where the choice of method changes the answer: the short-horizon bias of
# learning rates tuned greedily.
#
# Papers: Maclaurin, Duvenaud & Adams 2015, *Gradient-based hyperparameter optimization through
# reversible learning*; Franceschi, Donini, Frasconi & Pontil 2017, *Forward and reverse
# gradient-based hyperparameter optimization*; Shaban, Cheng, Hatch & Boots 2019, *Truncated
# back-propagation for bilevel optimization*; Lorraine, Vicol & Duvenaud 2020, *Optimizing millions
# of hyperparameters by implicit differentiation*; Wu, Ren, Liao & Grosse 2018, *Understanding
# short-horizon bias in stochastic meta-optimization*.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

import bilevel
import playground

QUICK = os.environ.get("PLAYGROUND_QUICK", "0") == "1"  # the test suite's small budget
torch.set_num_threads(1)  # problems of tens of numbers: one thread is the fastest
OUT = "runs/tutorials/05_bilevel"
F64 = torch.float64

# %% [markdown]
# ## Ridge regression: the answer in closed form
#
# The `ridge` problem tunes the log of an L2 weight: with $X$ the $30 \times 20$ training inputs,
#
# $$L_\text{train}(w, \lambda) = \tfrac12\|Xw - y\|^2 + \tfrac12 e^\lambda \|w\|^2, \qquad
#   L_\text{val}(w) = \tfrac{1}{2m}\|X_\text{val} w - y_\text{val}\|^2 .$$
#
# The inner minimiser solves $(X^\top X + e^\lambda I)\, w^* = X^\top y$. Differentiating that
# identity in $\lambda$ gives $(X^\top X + e^\lambda I)\, dw^*/d\lambda + e^\lambda w^* = 0$, so
#
# $$\frac{dw^*}{d\lambda} = -e^\lambda (X^\top X + e^\lambda I)^{-1} w^*, \qquad
#   \frac{dF}{d\lambda} = \nabla_w L_\text{val}(w^*)^\top \frac{dw^*}{d\lambda}$$
#
# ($L_\text{val}$ does not depend on $\lambda$ directly). This is the implicit function theorem in
# its smallest form: $-H^{-1}$ times the mixed derivative $\partial^2_{w\lambda} L_\text{train} =
# e^\lambda w$, with $H = \partial^2_{ww} L_\text{train}$. We write it out from the problem's data
# and check it against the library's reference, `Ridge.hypergradient`.

# %%
ridge = bilevel.make_problem("ridge")  # 20 weights, 30 training and 500 validation points, seed 0
lam0 = ridge.lam0  # λ₀ = 0: L2 weight 1

gram = ridge.x_train.T @ ridge.x_train
hessian = gram + lam0.exp() * torch.eye(gram.shape[0], dtype=F64)  # ∂²_ww L_train
w_star = torch.linalg.solve(hessian, ridge.x_train.T @ ridge.y_train)
slope = -lam0.exp() * torch.linalg.solve(hessian, w_star)  # dw*/dλ
val_grad = ridge.x_val.T @ (ridge.x_val @ w_star - ridge.y_val) / len(ridge.y_val)
exact = val_grad @ slope

print(f"dF/dλ at λ = 0, by hand: {exact.item():.12f}")
print(f"dF/dλ, Ridge.hypergradient: {ridge.hypergradient(lam0).item():.12f}")
assert bilevel.relative_error(exact, ridge.hypergradient(lam0)) < 1e-12

# %% [markdown]
# ## Seven ways to the hypergradient
#
# Real problems have no closed form, only $\nabla_w L_\text{train}$ and products with its
# derivatives. The methods fall in three families (each docstring in `bilevel.hypergradients`
# states its cost):
#
# - **Differentiate the optimiser.** Run $K$ steps $w_{t+1} = w_t - \eta \nabla_w
#   L_\text{train}(w_t, \lambda)$ from $w_0$ and differentiate $F_K(\lambda) =
#   L_\text{val}(w_K(\lambda))$ exactly. `unrolled` does it in reverse mode (Maclaurin et al. 2015),
#   storing the trajectory; `forward` carries $dw_t/d\lambda$ along in forward mode (Franceschi et
#   al. 2017), one tangent per hyperparameter and no trajectory; both give the same number.
#   `truncated` runs $T$ steps but back-propagates through the last $K$ only (Shaban et al. 2019).
# - **Implicit function theorem at $w^*$.** $\dfrac{dF}{d\lambda} = \partial_\lambda L_\text{val}
#   - \partial^2_{\lambda w} L_\text{train}\, H^{-1} \nabla_w L_\text{val}$ (Lorraine et al. 2020),
#   with the inverse-Hessian-vector product formed exactly (`ift_exact`, $\dim w$ products), by $k$
#   conjugate-gradient iterations (`ift_cg`), or by the Neumann series $H^{-1} \approx \eta
#   \sum_{j<J} (I - \eta H)^j$ (`ift_neumann`).
# - **Finite differences** of $F$ (`finite_diff`): two accurate inner solves per hyperparameter.
#
# Each method is a factory from the registry `bilevel.METHODS`; the factory's keyword is its
# budget. We call each at $\lambda_0$ over a range of budgets and measure the relative error
# against the closed form. (The registry's `first_order`, `one_step` and `stn` are the shortcuts of
# DARTS and Self-Tuning Networks, the subject of chapter 6.)

# %%
print("methods:", ", ".join(bilevel.METHODS))
budgets = [1, 10, 100, 316, 1000]  # K inner steps, or J Neumann terms
cg_iterations = [1, 3, 7, 10, 15, 20]  # 20 = dim w: CG is exact there in exact arithmetic
runs = (
    [("unrolled", {"steps": k}) for k in budgets]
    + [("forward", {"steps": k}) for k in (budgets[:3] if QUICK else budgets)]
    + [("truncated", {"steps": 1000, "last": k}) for k in (budgets[:-1] if QUICK else budgets)]
    + [("ift_exact", {})]
    + [("ift_cg", {"iters": k}) for k in cg_iterations]
    + [("ift_neumann", {"terms": k}) for k in budgets]
    + [("finite_diff", {})]
)
rows = []
for name, options in runs:
    h = bilevel.make_method(name, **options)(ridge, lam0)
    rows.append(
        dict(
            method=name,
            budget=next(iter(options.values()), None) if name != "truncated" else options["last"],
            error=bilevel.relative_error(h.value, exact),
            products=h.products,
            inner_steps=h.inner_steps,
            solves=h.solves,
            value=h.value,
        )
    )

print(
    f"{'method':12s} {'budget':>6s} {'rel. error':>10s} {'products':>8s} {'inner steps':>11s} {'solves':>6s}"
)
for r in rows:
    budget = "" if r["budget"] is None else r["budget"]
    line = f"{r['method']:12s} {budget!s:>6s} {r['error']:10.2e} {r['products']:8d}"
    print(f"{line} {r['inner_steps']:11d} {r['solves']:6d}")


def row(name, budget=None):
    """The row of a method at this budget, or at its largest one."""
    mine = [r for r in rows if r["method"] == name and budget in (None, r["budget"])]
    return mine[-1] if mine else None


gap = bilevel.relative_error(row("forward", 100)["value"], row("unrolled", 100)["value"])
print(f"forward − unrolled at K = 100: {gap:.1e}")

# %% [markdown]
# ## Reading the error against the cost
#
# - **Unrolled, forward, Neumann and truncated all converge at the same rate.** Gradient descent
#   on the quadratic $L_\text{train}$ contracts every error by $I - \eta H$ per step, so the error
#   after $K$ steps (or $J$ terms) falls like $\rho^K$ with $\rho = 1 - \eta\,\lambda_\min(H)$,
#   up to a prefactor. Here $\rho \approx 0.98$: a hundred products buy one digit. The dashed line
#   is $\rho^K$.
# - **Truncation is Neumann in disguise.** After $T - K \ge 684$ untracked steps $w$ already sits
#   at $w^*$, and back-propagating $K$ steps from $w^*$ sums exactly the first $K$ terms of the
#   Neumann series: the two agree to five digits or more (at $K = T$ nothing is untracked and
#   truncation is unrolling). Its error is bias, not noise, and falls only with $K$ (Shaban et al.
#   2019). Unrolling from $w_0 = 0$ is worse at equal $K$, because $w_K$ is not yet $w^*$.
# - **Forward equals reverse** to rounding. Forward mode costs $K \cdot \dim\lambda$ products and
#   no memory for the trajectory; reverse mode $K$ products and $K$ stored iterates. With one
#   hyperparameter forward mode is the natural choice; with millions (Lorraine et al. 2020), only
#   reverse mode or the implicit methods scale.
# - **Conjugate gradient** needs far fewer products: its error falls like
#   $\big(\tfrac{\sqrt\kappa - 1}{\sqrt\kappa + 1}\big)^k \approx (1 - 2/\sqrt\kappa)^k$ with
#   $\kappa$ the condition number of $H$ (dotted), where the plain iteration's $\rho$ is about
#   $1 - 1/\kappa$ (here 0.980 rather than $1 - 1/30$, because $\eta$ is set by the largest
#   curvature over the whole range of $\lambda$), and it is exact after $\dim w = 20$ iterations.
#   The price of every implicit method is an accurate inner solve first.

# %%
eigenvalues = torch.linalg.eigvalsh(hessian)
rho = 1 - ridge.inner_lr * eigenvalues.min().item()
kappa = (eigenvalues.max() / eigenvalues.min()).item()
cg_rate = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
print(f"ρ(I − ηH) = {rho:.4f}, κ(H) = {kappa:.1f}, CG rate (√κ − 1)/(√κ + 1) = {cg_rate:.3f}")
for k in budgets[:-1]:  # at K = T = 1000 truncation is unrolling
    truncated, neumann = row("truncated", k)["error"], row("ift_neumann", k)["error"]
    print(f"K = {k:4d}: truncated {truncated:.8e}, Neumann {neumann:.8e}")

fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
styles = {"unrolled": "o-", "forward": "x--", "truncated": "s-", "ift_cg": "^-", "ift_neumann": "v-"}
for name, style in styles.items():
    mine = [r for r in rows if r["method"] == name]
    ax.loglog([r["products"] for r in mine], [max(r["error"], 1e-17) for r in mine], style, label=name)
for name, marker in (("ift_exact", "*"), ("finite_diff", "D")):
    r = row(name)
    label = f"{name} ({r['products']} products, {r['solves']} solves)"
    ax.loglog([max(r["products"], 1)], [max(r["error"], 1e-17)], marker, ms=10, label=label)
ks = torch.logspace(0, 3, 50, dtype=F64)
ax.loglog(ks, rho**ks, "k--", lw=0.8, label="ρ^K")
ax.loglog(ks[ks <= 21], cg_rate ** ks[ks <= 21], "k:", lw=0.8, label="CG rate^k")
ax.set(xlabel="Hessian/Jacobian-vector products", ylabel="relative error of dF/dλ", ylim=(1e-17, 3))
ax.set_title("ridge: error of each hypergradient against the closed form")
ax.legend(fontsize=7, ncol=2)
os.makedirs(OUT, exist_ok=True)
fig.savefig(f"{OUT}/05_bilevel.png", dpi=80)  # the figure the README shows

# %% [markdown]
# ## Tuning $\lambda$
#
# With a hypergradient in hand, $\lambda$ descends: $\lambda_{s+1} = \lambda_s - \beta\,
# dF/d\lambda(\lambda_s)$ (`bilevel.outer_descent`, plain gradient descent so the path reads
# directly on the curve of $F$). Near the minimiser the error shrinks by $|1 - \beta F''(\lambda^*)|$
# per outer step. We compare the result with the minimiser of $F$ found two ways: on a grid of 2,001
# values of $\lambda$ (`bilevel.outer_loss_curve`), good to half a grid step, and as the root of the
# closed-form $dF/d\lambda$ by bisection, good to rounding.

# %%
outer_steps = 20 if QUICK else 40
result = bilevel.outer_descent(ridge, bilevel.make_method("ift_cg", iters=20), outer_steps, lr=0.5)
lam_tuned = result.lambdas[-1].item()

grid, losses = bilevel.outer_loss_curve(ridge)
lam_grid = grid[losses.argmin()].item()
low, high = ridge.lambda_range  # the root of the closed form: dF/dλ < 0 left of it, > 0 right
for _ in range(60):
    middle = (low + high) / 2
    low, high = (middle, high) if ridge.hypergradient(torch.tensor(middle, dtype=F64)) < 0 else (low, middle)
lam_root = (low + high) / 2
curvature = (
    ridge.hypergradient(torch.tensor(lam_root + 1e-4, dtype=F64))
    - ridge.hypergradient(torch.tensor(lam_root - 1e-4, dtype=F64))
).item() / 2e-4
print(f"F''(λ*) = {curvature:.3f}: contraction per outer step |1 − βF''| = {abs(1 - 0.5 * curvature):.3f}")
print(f"tuned λ = {lam_tuned:.10f} after {outer_steps} outer steps")
print(f"F: {result.losses[0]:.3f} at λ₀ → {result.losses[-1]:.4f}")
print(f"grid minimiser {lam_grid:.4f} (grid step {(grid[1] - grid[0]).item():.4f}), root {lam_root:.10f}")

fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
ax.plot(grid, losses, "k-", lw=1, label="F(λ), closed form")
ax.plot([x.item() for x in result.lambdas], result.losses, "o-", ms=3, label="outer descent (ift_cg)")
ax.axvline(lam_root, color="grey", ls=":", label=f"root of dF/dλ, λ* = {lam_root:.4f}")
ax.set(xlabel="λ = log L2 weight", ylabel="validation loss F(λ)", title="ridge: tuning λ by hypergradient")
ax.legend(fontsize=8)

# %% [markdown]
# ## The short-horizon bias (Wu et al. 2018)
#
# Now let $\lambda$ be the log learning rate $\log\alpha$ of $T$ steps of SGD on a noisy quadratic
# $L(w) = \tfrac12 \sum_i h_i w_i^2$, whose gradient is seen through noise $h \odot (w - \sigma \odot
# \xi)$. Per coordinate the mean and the variance of $w_t$ follow
#
# $$m_{t+1} = (1 - \alpha h)\, m_t, \qquad v_{t+1} = (1 - \alpha h)^2 v_t + \alpha^2 h^2 \sigma^2,$$
#
# so the expected loss after $T$ steps, $F_T(\alpha) = \tfrac12 \sum_i h_i (m_{T,i}^2 + v_{T,i})$, is
# a closed form (`LrHorizon.expected_loss`). In `lr_horizon` the high-curvature coordinates start at
# their minimum and the low-curvature ones far away. One step ahead, a large rate mostly injects
# noise into the stiff directions; over a hundred steps, it is what moves the flat ones. So the
# greedy optimum of $F_1$ is smaller than that of $F_{100}$.
#
# This problem also separates the families of methods. $L_\text{train}$ does not depend on a
# learning rate at all (its minimiser is $w^* = 0$ whatever $\alpha$), so the implicit function
# theorem answers $dF/d\lambda = 0$: only methods that differentiate the optimisation itself see a
# learning rate. The scenario tunes it by `unrolled` on $L_\text{val}$, the average over 100 SGD
# chains driven by fixed seeded noise; `inner_steps=1` unrolls one step only, the greedy tuner.

# %%
horizon = bilevel.make_problem("lr_horizon")  # T = 100 steps, 100 chains, lr₀ = 0.05
grid_h = torch.linspace(*horizon.lambda_range, 2001, dtype=F64)
curves = {T: torch.func.vmap(lambda lam, T=T: horizon.expected_loss(lam, T))(grid_h) for T in (1, 100)}
optimum = {T: grid_h[curves[T].argmin()].exp().item() for T in curves}
print(f"closed form: greedy (T = 1) optimum α = {optimum[1]:.3f}, T = 100 optimum α = {optimum[100]:.3f}")

ift = bilevel.make_method("ift_cg", iters=10)(horizon, horizon.lam0).value.item()
unrolled = bilevel.make_method("unrolled", steps=100)(horizon, horizon.lam0).value.item()
print(f"dF/dλ at α = 0.05: closed form {horizon.hypergradient(horizon.lam0).item():.4f}, ", end="")
print(f"unrolled over 100 chains {unrolled:.4f}, ift_cg {ift:.1f}")

settings = dict(problem="lr_horizon", outer_steps=10 if QUICK else 30, compare=False, plots=False)
long_run = playground.run("bilevel", out=f"{OUT}/lr_horizon", overwrite=True, **settings)
greedy_run = playground.run(
    "bilevel",
    out=f"{OUT}/lr_horizon_greedy",
    overwrite=True,
    inner_steps=1,  # unroll one SGD step: the greedy objective
    outer_lr=30.0,  # F_1 is flat in λ: at the default outer rate 1, 30 steps only reach α = 0.065
    **settings,
)
tuned = {1: greedy_run.summary["outer/lr"], 100: long_run.summary["outer/lr"]}
F100 = lambda a: horizon.expected_loss(torch.tensor(math.log(a), dtype=F64), 100).item()
for T in (1, 100):
    print(
        f"tuned over T = {T:3d}: α = {tuned[T]:.3f}, its expected loss after 100 steps {F100(tuned[T]):.4f}"
    )
print(f"best possible after 100 steps: {F100(optimum[100]):.4f}")

fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
alphas = grid_h.exp()
for T, colour in ((1, "C0"), (100, "C1")):
    ax.semilogx(alphas, curves[T] / curves[T].min(), color=colour, label=f"F_{T}(α) / min F_{T}")
    ax.axvline(optimum[T], color=colour, ls=":", lw=1)
    steps, values = (greedy_run if T == 1 else long_run).metrics["outer/lambda"]
    ax.plot([math.exp(values[-1])], [1.0], "o", color=colour, label=f"tuned by unrolled, T = {T}")
ax.set(xlabel="learning rate α", ylabel="expected loss, relative to its minimum", ylim=(0.9, 3))
ax.set_title("lr_horizon: the greedy optimum is too small")
ax.legend(fontsize=8)

# %% [markdown]
# ## Known answers
#
# - **Hypergradient.** The four accurate methods (CG with 20 iterations, finite differences, Neumann
#   and unrolling with 1,000 products) must match the closed form to $10^{-7}$: CG is exact after
#   $\dim w$ iterations in exact arithmetic, and in floating point its search directions lose
#   conjugacy, which leaves $10^{-10}$ or so; the Neumann and unrolled errors are
#   $O(\rho^{1000}) \approx 10^{-9}$ times a factor that grows with $K$ for unrolling (it starts
#   from $w_0$, not $w^*$); central differences with $\varepsilon = 10^{-4}$ err by
#   $O(\varepsilon^2) = 10^{-8}$ plus rounding $u/\varepsilon \approx 10^{-12}$.
# - **Tuned $\lambda$.** Outer descent must land on the root of the closed-form $dF/d\lambda$ to
#   $10^{-6}$: $|1 - \beta F''| \approx 0.02$ per step, so 20 steps are far more than enough. The
#   README's 2.9206 is the grid minimiser, within half a grid step (0.0016) of the root.
# - **Short horizon.** The closed-form optima are $\alpha = 0.180$ (greedy) and $0.425$ ($T =
#   100$), the README's figures to three digits, which our grid (steps of 0.26% in $\alpha$)
#   reproduces; the bias itself is Wu et al.'s finding. The tuned rates come from 100 sampled chains,
#   whose average is the expectation up to a relative $O(1/\sqrt{100}) = 10\%$: we accept 10%
#   around each optimum, ask that the long-horizon rate lose under 1% of expected loss, and that
#   the greedy rate be less than half the long one.

# %%
accurate = {name: row(name)["error"] for name in ("ift_cg", "finite_diff", "ift_neumann", "unrolled")}
print(
    f"known answer: dF/dλ(0) = {exact.item():.10f} (closed form, w* = (XᵀX + e^λ I)⁻¹Xᵀy); ours: "
    + ", ".join(f"{name} rel. error {error:.1e}" for name, error in accurate.items())
)
print(
    f"known answer: argmin F = {lam_root:.8f} (root of the closed-form dF/dλ; README grid 2.9206); "
    f"ours, {outer_steps} outer steps with ift_cg: {lam_tuned:.8f}"
)
print(
    f"known answer: optimal learning rate greedy 0.180, T = 100 0.425 (closed form of the noisy "
    f"quadratic, README; Wu et al. 2018's bias); ours tuned by unrolled hypergradients: "
    f"{tuned[1]:.3f} and {tuned[100]:.3f}"
)
assert all(error < 1e-7 for error in accurate.values()), accurate
assert abs(optimum[1] / 0.180 - 1) < 3e-3 and abs(optimum[100] / 0.425 - 1) < 3e-3, optimum  # rounding + grid
assert abs(lam_tuned - lam_root) < 1e-6 and abs(lam_grid - lam_root) < 0.0016
assert abs(tuned[1] / 0.180 - 1) < 0.1 and abs(tuned[100] / 0.425 - 1) < 0.1, tuned
assert F100(tuned[100]) < 1.01 * F100(optimum[100]) and tuned[1] < tuned[100] / 2
