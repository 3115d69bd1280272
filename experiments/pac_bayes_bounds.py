"""Foret et al.'s PAC-Bayes bound (Theorem 2, App. A) for MLPs trained by ERM and SAM variants, against ρ.

Foret et al. (2021) motivate SAM by their Theorem 2, a PAC-Bayes bound whose
loss term is the worst case over a ρ-ball; App. A proves it from the bound
on the Gaussian-perturbed network ``Q = N(w, σ²I)``, ``σ = ρ/(√k + √ln n)``
(eq. 13). This figure evaluates that bound for trained networks and shows
where it is vacuous (docs/bounds.md has the derivations and what we found in
the appendix).

Setup (every choice is a :class:`Config` field):

* **Data** ([data-layout]): binary MNIST-1D, even vs odd digit
  (:func:`samtheory.data.binary_subset`), the standard 5 000-sample set
  (4 000 train, 1 000 test, both classes ≈ 50 %), generated locally by
  :func:`samtheory.data.load_mnist1d` into ``data_path``.
* **Model**: MLP 40 → 64 → 2, ReLU, He initialization ``w₀`` (seeded), so
  ``k = 2 754`` parameters; softmax cross-entropy; float32 (``dtype``) for
  speed: the bounds need 0-1 errors of perturbed networks, not float64
  theory.
* **Training**: SGD with momentum 0.9, learning rate 0.05 with cosine decay
  to 0, minibatches of 100 from a fresh permutation every epoch
  (:func:`samtheory.mlp_training.train_mlp`), 100 epochs. Variants ([rho-sam], [m], [normalize]):
  ERM; n-SAM (ρ = 0.1, perturbation from the minibatch); m-SAM (m = 10,
  ρ = 0.05); USAM (``SAM(normalize=False)``, ascent step 0.5); RandomSAM
  (a uniformly random direction, radius 1: a random direction in
  ``k`` dimensions raises the loss about ``k`` times less than the
  worst-case one, so at SAM's radius it would be ERM in all but name). Each
  variant is trained from the same seeds, so the same ``w₀`` and minibatch
  order per seed.
* **Bounds** ([bounds]), for every trained ``w`` and every ρ of the grid
  ``bound_rhos`` (fixed before training; each curve holds *at its own ρ*
  with probability ``≥ 1 − δ − δ'``; the curves are pointwise bounds, and
  their pointwise minimum is **not** a bound):

  - the Monte Carlo 0-1 training error of ``Q``, and its upper confidence
    bound ``kl⁻¹(X̄, ln(2/δ')/N)`` (:func:`samtheory.models.mlp.perturbed_error_count`; ``N = n R``
    with ``R = 25`` rounds, 100 000 draws; δ = 0.05, δ' = 0.01);
  - eq. 13 as printed (:func:`samtheory.bounds.foret_eq13_bound`) with that
    upper bound as loss term, with prior mean ``w₀`` (``d = ‖w − w₀‖``) and
    with the paper's prior mean 0 (``d = ‖w‖``);
  - the exact kl form on the same prior grid
    (:func:`samtheory.bounds.foret_kl_bound`), prior mean ``w₀``.

  - **the minimum over the ρ grid** (panel (h), summary
    ``*_min_kl_form``): a bound only if it pays the union bound over the
    ``G = len(bound_rhos)`` grid points, so it is recomputed with ``δ/G``
    and ``δ'/G`` (the Monte Carlo certificate and the PAC-Bayes kl form at
    every ρ), which adds ``ln G`` to both numerators
    (:func:`union_over_rho_grid`); the unpaid minimum is kept only as
    ``*_min_kl_form_unpaid`` to show what the union costs.

  Next to them: the 0-1 test error of ``w`` (what one wants to bound) and the
  Monte Carlo test error of ``Q`` (what the bounds bound; they bound ``w``
  itself only under Foret et al.'s assumption ``L_D(w) ≤ E_ε L_D(w + ε)``).
* **ResNet-18 on paper**: eq. 13 and the exact kl form for ``k = 11 173 962``,
  ``n = 50 000`` with a loss term 0 (the most favourable case) and
  ``‖w − μ_P‖ ∈ {10, 30, 80}`` (docs/bounds.md: ‖w₀‖ ≈ 80 at PyTorch's
  initialization).

**The Monte Carlo estimator.** :func:`samtheory.bounds.foret_monte_carlo_bound`
draws ``N`` weight vectors and evaluates each on the whole training set; its
certificate ``kl⁻¹(X̄, ln(2/δ')/N)`` only sees ``N``, not how many examples
each draw averages over. Here every (example, round) pair gets its own
weight draw instead: ``N = n · R`` independent 0-1 variables, for the cost
of ``R`` forward passes over the training set. For an MLP with independent
Gaussian weights the pre-activations of one example are, given the previous
layer, independent Gaussians with mean ``h W + b`` and variance
``h² s_W + s_b`` (the local reparametrization of Kingma, Salimans & Welling
2015), so sampling them layer by layer is *exactly* sampling ``w + ε`` per
example, with one normal per unit instead of one per weight. The variables
are independent but not identically distributed (each example has its own
error probability); Hoeffding's (1963) Theorem 1 gives the kl Chernoff bound
for independent ``[0, 1]`` variables with the mean of their means,
``E X̄ = E_Q L_S``, so the certificate of
:func:`samtheory.bounds.monte_carlo_upper_bound` applies unchanged.
(Tested: it agrees with :func:`samtheory.bounds.gaussian_perturbed_losses`
within Monte Carlo error, and at σ = 0 it is the deterministic error.)

What it finds (full config, three seeds): eq. 13 is above 1 for ρ ≤ 1
for every variant (≈ 1.36–1.41 at ρ = 0.1) and the exact kl form, though
below 1 by construction, never goes below chance (0.5): its minimum over
the 10-point grid, paid for with δ/10 and δ'/10 (ln 10 ≈ 2.30 more in both
numerators), is ≈ 0.59 for every variant (0.5886–0.5936; the unpaid
pointwise minimum, not a bound, is 0.0026 lower), at the largest ρ — the
grid's edge, where ``Q`` itself is at chance, so a wider grid cannot go
below 0.5. Where ``Q`` still predicts like ``w`` (ρ ≤ 2) the kl form is
0.85–0.98. The SAM variants' bounds are lower than ERM's by at most 0.035
(ρ = 5–10; slightly higher at ρ ≤ 1, where their larger training error
counts), about what separates their test errors (seed means: ERM 0.314,
n-SAM 0.279, m-SAM 0.278, n-USAM 0.264, random 0.298). The prior mean hardly matters
here (‖w − w₀‖ ≈ 14 against ‖w‖ ≈ 17). At ResNet-18 size eq. 13 is 6–32
for ρ ≤ 10 (loss term 0); docs/bounds.md has the table.

Conventions: [bounds], [loss-mean], [rho-sam], [m], [normalize], [rng],
[float], [data-layout].
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from matplotlib.figure import Figure

from samtheory import bounds, sam
from samtheory.bounds import misclassified
from samtheory.mlp_training import check_trained, float_dtype, train_mlp
from samtheory.data import binary_subset, load_mnist1d
from samtheory.models import mlp
from samtheory.style import sequential_colors, variant_color, variant_label

NAME = "pac_bayes_bounds"
TITLE = "Foret et al.'s PAC-Bayes bound (eq. 13, exact kl form, Monte Carlo) against ρ for ERM/SAM-trained MLPs; ResNet-18 on paper"
CAPTION = ("Paid for the union over its ρ grid, Foret et al.'s bound is at best 0.59 for "
           + ", ".join(variant_label(key) for key in ("erm", "n_sam", "m_sam", "usam")) + f" and {variant_label('random')} "
           "alike, at ρ = 100, the grid's largest: at this size it does not tell SAM from ERM.")
CODE_VERSION = 1

#: Training variants, in plotting order (names are the summary keys' prefixes).
VARIANTS = ("ERM", "n-SAM", "m-SAM", "USAM", "RandomSAM")
#: Their keys in :mod:`samtheory.style`: labels and colours come from there only.
STYLE_KEYS = {"ERM": "erm", "n-SAM": "n_sam", "m-SAM": "m_sam", "USAM": "usam", "RandomSAM": "random"}
COLORS = {name: variant_color(key) for name, key in STYLE_KEYS.items()}
LABELS = {name: variant_label(key) for name, key in STYLE_KEYS.items()}


@dataclasses.dataclass(frozen=True)
class Config:
    data_path: str = ".cache/samtheory/data/mnist1d_n5000_seed42.npz"
    num_samples: int = 5000
    train_split: float = 0.8
    data_seed: int = 42
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    init: str = "he"
    dtype: str = "float32"
    epochs: int = 100
    batch_size: int = 100
    learning_rate: float = 0.05
    momentum: float = 0.9
    nsam_rho: float = 0.1
    msam_rho: float = 0.05
    msam_m: int = 10
    usam_rho: float = 0.5
    random_rho: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    bound_rhos: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    delta: float = 0.05
    delta_prime: float = 0.01
    #: Rounds R of the per-example Monte Carlo: N = n R draws (train), n_test R (test).
    mc_rounds: int = 25
    mc_seed: int = 2021
    resnet_num_params: int = 11_173_962
    resnet_n: int = 50_000
    resnet_distances: tuple[float, ...] = (10.0, 30.0, 80.0)
    resnet_rhos: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def config(quick: bool) -> Config:
    if quick:
        return Config(hidden=(16,), epochs=3, seeds=(0,), bound_rhos=(1.0, 10.0), mc_rounds=2)
    return Config()


# ---------------------------------------------------------------------------
# Training


# ---------------------------------------------------------------------------
# Monte Carlo 0-1 error of the Gaussian-perturbed network


def mc_upper_bound(error_count, num_draws: int, delta_prime: float) -> tuple[np.ndarray, np.ndarray]:
    """``(X̄, kl⁻¹(X̄, ln(2/δ')/N))`` for ``error_count`` errors among ``N = num_draws`` independent draws.

    The upper end holds with probability ``≥ 1 − δ'`` (Hoeffding 1963, Thm 1,
    for independent ``[0, 1]`` variables; the two-sided ``ln(2/δ')`` as in
    :func:`samtheory.bounds.mean_upper_bound`). Conventions: [bounds].
    """
    mean = np.asarray(error_count, np.float64) / num_draws
    return mean, np.asarray(bounds.mean_upper_bound(mean, num_draws, delta_prime), np.float64)


# ---------------------------------------------------------------------------
# The figure's computation


def load_data(cfg: Config):
    """``(x_train, y_train, x_test, y_test)``: binary (even/odd) MNIST-1D as NumPy arrays. Conventions: [data-layout]."""
    ds = load_mnist1d(cfg.data_path, num_samples=cfg.num_samples, train_split=cfg.train_split, seed=cfg.data_seed)
    ds = binary_subset(ds, "even_odd")
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def variant_of(cfg: Config, name: str) -> sam.Variant:
    """The training variant called ``name`` (one of :data:`VARIANTS`). Conventions: [rho-sam], [m], [normalize]."""
    return {
        "ERM": sam.ERM(),
        "n-SAM": sam.SAM(cfg.nsam_rho),
        "m-SAM": sam.SAM(cfg.msam_rho, m=cfg.msam_m),
        "USAM": sam.SAM(cfg.usam_rho, normalize=False),
        "RandomSAM": sam.RandomSAM(cfg.random_rho),
    }[name]


def foret_bounds(error_upper, num_params: int, n: int, distance, distance_to_zero, rhos, delta: float) -> dict:
    """Eq. 13 (prior mean ``w₀`` and 0) and the exact kl form, broadcast over ``error_upper`` and ``rhos``.

    ``error_upper`` is the certified upper bound on ``E_ε L_S(w + ε)`` at
    each ρ; ``distance = ‖w − w₀‖``, ``distance_to_zero = ‖w‖``.
    Conventions: [bounds], [rho-sam].
    """
    eq13 = bounds.foret_eq13_bound(error_upper, num_params, n, distance, rhos, delta)
    eq13_zero = bounds.foret_eq13_bound(error_upper, num_params, n, distance_to_zero, rhos, delta)
    kl_form = bounds.foret_kl_bound(error_upper, num_params, n, distance, rhos, delta)
    return {
        "eq13": np.asarray(eq13.bound),
        "eq13_in_range": np.asarray(eq13.in_range),
        "eq13_prior_zero": np.asarray(eq13_zero.bound),
        "kl_form": np.asarray(kl_form.bound),
        "kl_form_grid_index": np.asarray(kl_form.grid.grid_index),
        "kl_form_kl": np.asarray(kl_form.grid.kl),
    }


def union_over_rho_grid(train_counts, num_draws: int, num_params: int, n: int, distance, rhos, delta: float,
                        delta_prime: float) -> dict:
    """The exact kl form at every ρ with ``δ/G`` and ``δ'/G``, ``G = len(rhos)``, and its minimum over ρ.

    Each ρ of the grid is a different posterior; a bound at each holds with
    probability ``1 − δ − δ'``, so choosing the best ρ after seeing the data
    needs all ``G`` to hold at once. Splitting both failure probabilities
    evenly over the grid (the union bound) makes them hold together with
    probability ``≥ 1 − δ − δ'``; the price is ``ln G`` in the PAC-Bayes
    numerator and in the Monte Carlo certificate. ``train_counts`` is
    ``(..., G)``; ``distance`` broadcasts against it.

    Returns ``kl_form_union`` (``(..., G)``), its minimum over the last axis
    ``min_kl_form_union``, and ``rho_grid_cost = ln G``. Conventions: [bounds].
    """
    grid_size = np.shape(rhos)[-1]
    _, upper = mc_upper_bound(train_counts, num_draws, delta_prime / grid_size)
    kl_form = np.asarray(bounds.foret_kl_bound(upper, num_params, n, distance, rhos, delta / grid_size).bound)
    return {"kl_form_union": kl_form, "min_kl_form_union": kl_form.min(axis=-1),
            "rho_grid_cost": math.log(grid_size)}


def resnet_on_paper(cfg: Config) -> dict:
    """Eq. 13 and the exact kl form at ResNet-18 size with a zero loss term, ``(distances, rhos)``.

    Conventions: [bounds], [rho-sam].
    """
    d = np.asarray(cfg.resnet_distances)[:, None]
    rhos = np.asarray(cfg.resnet_rhos)[None, :]
    k, n = cfg.resnet_num_params, cfg.resnet_n
    return {
        "resnet_eq13": np.asarray(bounds.foret_eq13_bound(0.0, k, n, d, rhos, cfg.delta).bound),
        "resnet_kl_form": np.asarray(bounds.foret_kl_bound(0.0, k, n, d, rhos, cfg.delta).bound),
    }


def _check_config(cfg: Config) -> None:
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"seeds must be distinct and non-empty, got {cfg.seeds}")
    if not cfg.bound_rhos or any(r <= 0 for r in cfg.bound_rhos):
        raise ValueError(f"bound_rhos must be non-empty and > 0, got {cfg.bound_rhos}")
    if cfg.batch_size % cfg.msam_m:
        raise ValueError(f"msam_m={cfg.msam_m} must divide batch_size={cfg.batch_size}")
    if cfg.mc_rounds < 1:
        raise ValueError(f"mc_rounds must be >= 1, got {cfg.mc_rounds}")


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    _check_config(cfg)
    dtype = float_dtype(cfg.dtype)
    x_train, y_train, x_test, y_test = load_data(cfg)
    x, y = jnp.asarray(x_train, dtype), jnp.asarray(y_train, jnp.int32)
    xt, yt = jnp.asarray(x_test, dtype), jnp.asarray(y_test, jnp.int32)
    sizes = (x.shape[1], *cfg.hidden, 2)
    n, n_test = x.shape[0], xt.shape[0]
    seeds = jnp.asarray(cfg.seeds, jnp.uint32)
    total = len(VARIANTS) + 1

    # Training: one compiled, seed-vmapped call per variant. w₀ comes from
    # the seed alone, so it is the same for every variant (and data-free).
    def train_one(variant, seed):
        init_key, order_key = jax.random.split(jax.random.PRNGKey(seed))
        params0 = mlp.init_mlp(init_key, sizes, init=cfg.init, dtype=dtype)
        params, loss = train_mlp(
            variant, params0, x, y, order_key, epochs=cfg.epochs, batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate, momentum=cfg.momentum, activation=cfg.activation,
        )
        return params0, params, loss

    trained, initial, curves = [], [], []
    for i, name in enumerate(VARIANTS):
        params0, params, loss = jax.jit(jax.vmap(functools.partial(train_one, variant_of(cfg, name))))(seeds)
        initial.append(params0)
        trained.append(params)
        curves.append(np.asarray(loss))
        if progress is not None:
            progress((i + 1) / total)
    train_loss = np.stack(curves)  # (variants, seeds, epochs)
    check_trained(train_loss.reshape(-1, cfg.epochs), [f"{v} seed {s}" for v in VARIANTS for s in cfg.seeds])

    def stack(trees):
        return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *trees)

    params, params0 = stack(trained), stack(initial)  # leading axis: variant-major (variant, seed)
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])
    distance = np.asarray(jnp.linalg.norm(flat(params) - flat(params0), axis=1), np.float64)
    norm = np.asarray(jnp.linalg.norm(flat(params), axis=1), np.float64)
    num_params = mlp.param_count(jax.tree.map(lambda a: a[0], params0))
    predict = functools.partial(mlp.predict, activation=cfg.activation)
    train_error = np.asarray(jax.vmap(lambda p: jnp.mean(misclassified(predict(p, x), y)))(params), np.float64)
    test_error = np.asarray(jax.vmap(lambda p: jnp.mean(misclassified(predict(p, xt), yt)))(params), np.float64)

    # Monte Carlo: the same draws (key) for every model and ρ, so the curves
    # are smooth in ρ; ρ is vmapped, models are mapped one after the other
    # to bound memory.
    rhos = np.asarray(cfg.bound_rhos, np.float64)
    sigma = np.asarray(bounds.foret_posterior_std(rhos, num_params, n), np.float64)
    train_key, test_key = jax.random.split(jax.random.PRNGKey(cfg.mc_seed))
    count = functools.partial(mlp.perturbed_error_count, rounds=cfg.mc_rounds, activation=cfg.activation)

    def counts_one_model(p):
        over_rho = jax.vmap(lambda s2: (count(p, s2, x, y, train_key), count(p, s2, xt, yt, test_key)))
        return over_rho(jnp.asarray(sigma**2, dtype))

    train_counts, test_counts = jax.jit(lambda ps: jax.lax.map(counts_one_model, ps))(params)
    if progress is not None:
        progress(1.0)
    mc_train, mc_train_upper = mc_upper_bound(train_counts, n * cfg.mc_rounds, cfg.delta_prime)
    mc_test = np.asarray(test_counts, np.float64) / (n_test * cfg.mc_rounds)
    found = foret_bounds(mc_train_upper, num_params, n, distance[:, None], norm[:, None], rhos[None, :], cfg.delta)

    union = union_over_rho_grid(train_counts, n * cfg.mc_rounds, num_params, n, distance[:, None], rhos[None, :],
                                cfg.delta, cfg.delta_prime)
    found["kl_form_union"] = union["kl_form_union"]
    shape = (len(VARIANTS), len(cfg.seeds))
    result = {key: value.reshape(*shape, len(rhos)) for key, value in found.items()}
    result["min_kl_form_union"] = union["min_kl_form_union"].reshape(shape)
    result["rho_grid_cost"] = union["rho_grid_cost"]
    result.update(
        rhos=rhos, sigma=sigma, num_params=num_params, n_train=n, n_test=n_test,
        train_error=train_error.reshape(shape), test_error=test_error.reshape(shape),
        distance=distance.reshape(shape), norm=norm.reshape(shape), train_loss=train_loss,
        mc_train=mc_train.reshape(*shape, len(rhos)), mc_train_upper=mc_train_upper.reshape(*shape, len(rhos)),
        mc_test=mc_test.reshape(*shape, len(rhos)),
        mc_train_draws=n * cfg.mc_rounds, mc_test_draws=n_test * cfg.mc_rounds,
    )
    result.update(resnet_on_paper(cfg))
    return result


# ---------------------------------------------------------------------------
# Figure


def _band(ax, x, values, color, style, label):
    mean = values.mean(axis=0)
    ax.plot(x, mean, style, color=color, lw=1.6, label=label)
    if values.shape[0] > 1:
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=color, alpha=0.15, lw=0)


def _variant_panel(ax, result: dict, i: int, top: float) -> None:
    """Panel (a)–(e): every bound and error of variant ``i`` against ρ."""
    rhos = result["rhos"]
    _band(ax, rhos, result["eq13_prior_zero"][i], "tab:red", ":", "eq. 13, prior mean 0 (d = ‖w‖)")
    _band(ax, rhos, result["eq13"][i], "tab:red", "-", "eq. 13, prior mean $w_0$ (d = ‖w − $w_0$‖)")
    _band(ax, rhos, result["kl_form"][i], "tab:blue", "-", "exact kl form, prior mean $w_0$")
    _band(ax, rhos, result["mc_train_upper"][i], "tab:green", "--", "MC train error of Q (upper confidence bound)")
    _band(ax, rhos, result["mc_test"][i], "tab:gray", "-.", "MC test error of Q")
    ax.axhline(result["test_error"][i].mean(), color="k", lw=1.2, label="test error of w (seed mean)")
    ax.axhspan(1, top, color="tab:red", alpha=0.07, lw=0)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set(xscale="log", ylim=(0, top), xlabel="ρ")


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(14, 8.6), layout="constrained")
    axes = fig.subplots(2, 4)
    rhos = result["rhos"]
    top = max(1.6, float(np.max(result["eq13_prior_zero"])) * 1.05)
    for i, (name, ax) in enumerate(zip(VARIANTS, axes.flat)):
        _variant_panel(ax, result, i, top)
        ax.set_title(f"({'abcde'[i]}) {LABELS[name]}: test error {result['test_error'][i].mean():.3f}\n"
                     f"‖w − $w_0$‖ = {result['distance'][i].mean():.1f}, "
                     f"‖w‖ = {result['norm'][i].mean():.1f}")
        if i in (0, 4):
            ax.set_ylabel("0-1 error / bound")
        if i == 0:
            # At the right: the bounds are below 1 at large ρ, above it at small ρ.
            ax.text(rhos[-1], 1.04, "vacuous (> 1)", fontsize=10, color="tab:red", ha="right")
            ax.text(rhos[0], 0.53, "chance", fontsize=10, color="gray")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower left", ncol=2,
               title="panels (a)–(e): line = seed mean, band = range over seeds", title_fontsize=10)

    ax = axes.flat[5]
    for i, name in enumerate(VARIANTS):
        _band(ax, rhos, result["kl_form"][i], COLORS[name], "-", LABELS[name])
        ax.axhline(result["test_error"][i].mean(), color=COLORS[name], lw=1.0, ls=":")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="ρ", ylabel="exact kl form")
    ax.set_title("(f) kl form, each ρ on its own\ndotted: test error of w")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower right", ncol=3,
               title="panels (f), (h): training variant", title_fontsize=10)

    ax = axes.flat[6]
    colors = sequential_colors(len(cfg.resnet_distances))
    for j, (d, color) in enumerate(zip(cfg.resnet_distances, colors)):
        ax.plot(cfg.resnet_rhos, result["resnet_eq13"][j], "-o", ms=4, color=color,
                label=f"‖w − $\\mu_P$‖ = {d:g}")
        # Every kl form is ≈ 1 up to ρ ≈ 30: thicker lines underneath keep all three in sight.
        ax.plot(cfg.resnet_rhos, result["resnet_kl_form"][j], "--", color=color,
                lw=1.4 + 0.9 * (len(colors) - 1 - j), zorder=2 + j)
    ax.plot([], [], "-", color="gray", label="eq. 13")
    ax.plot([], [], "--", color="gray", label="exact kl form")
    # Vacuous (> 1) shaded as in (a)–(e): a line at 1 would hide the kl forms lying on it.
    ax.axhspan(1, 1e3, color="tab:red", alpha=0.07, lw=0)
    ax.axvline(0.05, color="gray", lw=0.8, ls=":")
    ax.text(0.055, 1.3, "ρ = 0.05\n(SAM's usual)", fontsize=10, color="gray", va="bottom")
    ax.set(xscale="log", yscale="log", ylim=(1e-3, 1e2), xlabel="ρ", ylabel="bound, loss term 0")
    ax.set_title(f"(g) ResNet-18 on paper\nk = {cfg.resnet_num_params:,}, n = {cfg.resnet_n:,}")
    ax.legend(loc="lower left", bbox_to_anchor=(0.2, 0.0))  # right of the ρ = 0.05 line

    ax = axes.flat[7]
    best = result["min_kl_form_union"]
    for i, name in enumerate(VARIANTS):
        ax.scatter(result["test_error"][i], best[i], color=COLORS[name], s=24)
    errors = np.asarray(result["test_error"], np.float64)
    margin = 0.02
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set(xlim=(max(errors.min() - margin, 0.0), min(errors.max() + margin, 1.0)), ylim=(0, 1),
           xlabel="test error of w", ylabel="kl form, min over ρ")
    ax.set_title(f"(h) min over the {len(rhos)}-point ρ grid\nunion bound paid: δ/{len(rhos)}, δ'/{len(rhos)}")
    fig.suptitle(
        f"Binary MNIST-1D (even/odd), MLP {'-'.join(map(str, (40, *cfg.hidden, 2)))} (k = {result['num_params']}), "
        f"n = {result['n_train']}, δ = {cfg.delta:g}, δ' = {cfg.delta_prime:g}, {len(cfg.seeds)} seed(s); "
        f"Q = N(w, σ²I), σ = ρ/(√k + √ln n), N = {result['mc_train_draws']:,} Monte Carlo draws",
        fontsize=12,
    )
    return fig


def summary(result: dict, cfg: Config) -> dict[str, float]:
    """Per variant (seed means): test/train error of ``w``, and eq. 13 and the kl form at every ρ."""
    out: dict[str, float] = {"num_params": float(result["num_params"]), "rho_grid_cost": float(result["rho_grid_cost"])}
    for i, name in enumerate(VARIANTS):
        out[f"{name}_test_error"] = float(result["test_error"][i].mean())
        out[f"{name}_train_error"] = float(result["train_error"][i].mean())
        out[f"{name}_distance_to_init"] = float(result["distance"][i].mean())
        # A bound: the minimum over the ρ grid with δ/G, δ'/G (union over the grid), seed mean.
        out[f"{name}_min_kl_form"] = float(result["min_kl_form_union"][i].mean())
        # Not a bound: the same minimum without paying for the choice of ρ; shows the union's cost.
        out[f"{name}_min_kl_form_unpaid"] = float(result["kl_form"][i].min(axis=-1).mean())
        vacuous = np.all(result["eq13"][i] > 1, axis=0)  # every seed
        out[f"{name}_eq13_vacuous_up_to_rho"] = float(result["rhos"][vacuous].max()) if vacuous.any() else 0.0
        for j, rho in enumerate(result["rhos"]):
            out[f"{name}_kl_form_rho{rho:g}"] = float(result["kl_form"][i, :, j].mean())
            out[f"{name}_eq13_rho{rho:g}"] = float(result["eq13"][i, :, j].mean())
            out[f"{name}_mc_test_rho{rho:g}"] = float(result["mc_test"][i, :, j].mean())
    out["resnet_min_eq13"] = float(result["resnet_eq13"].min())
    return out
