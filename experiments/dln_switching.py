"""ERM↔1-SAM switching on the diagonal network: the reference notebook's fine-tuning runs, then sweeps.

Andriushchenko & Flammarion (2022, §5 and the talk) find for deep nets that
fine-tuning a converged ERM model with SAM recovers much of SAM's gain, and
that the ERM and ERM→SAM minima are linearly connected; their notebook
(``tml-epfl/understanding-sam``, ``diagonal_linear_nets/diag_nets_sam.ipynb``,
cells 5–7) shows the same on the diagonal network. This figure first
reproduces those cells on the notebook's own instance
(:func:`samtheory.models.dln_reference.notebook_problem`) in the notebook's
setting, read from its code (cell 5 prints a stale ρ = 0.9):

* β = u⊙v, u₀ = 0.1, v₀ = 0, full-batch GD with step γ = 1/d, phases of
  10⁴ + 1 updates;
* ERM for two phases; ERM for one phase, then 1-SAM at notebook ρ = 10
  (**our ρ = 20**, [rho-notebook]); 1-SAM at notebook ρ = 0.175 (our 0.35)
  for one phase, then ERM;
* cell 7: train and test loss along ``(1 − α) w_{ERM→1SAM} + α w_ERM`` for
  α ∈ [−1, 2] (100 points), in the (u, v) parameters.

Then, in the same protocol (two phases, the switch anywhere), the final
test loss over a grid of switch steps × ρ, one vmapped call per direction.

What the sweeps found (README): 1-SAM run from the initialization for all
2·(10⁴+1) steps collapses to β = 0 for our ρ ≥ 0.7, while a switch at
k ≥ 3000 takes ρ up to 20 before diverging at 28; the 100× gain of the
notebook's ERM→1-SAM run sits at the edge of that range, where 1-SAM does
not converge but settles on a period-2 oscillation (train loss alternating
4.4e-5 / 4.8e-5). At a moderate ρ = 2.5 the gain needs an early switch
(k = 300: test loss 2.1e-7; k ≥ 1000: about ERM's). One instance, one
draw, deterministic runs.

Conventions: [loss-mean], [loss-sq], [alpha], [rho-sam], [m], [record], [rho-notebook].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import matplotlib.patches
import matplotlib.ticker
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from samtheory import sam, train
from samtheory.models import dln
from samtheory.models.dln_reference import NOTEBOOK_STEPS, notebook_problem
from samtheory.sharpness import linear_interpolation
from samtheory.style import CAPTION_FONTSIZE, VARIANT_COLORS, VARIANT_LABELS

NAME = "dln_switching"
TITLE = "DLN: the notebook's ERM->1-SAM fine-tuning and 1-SAM->ERM runs, switch-step x rho sweeps, linear path"
CAPTION = (
    "Fine-tuning the converged ERM model with 1-SAM cuts its test loss 100x (1.5e-2 to 1.4e-4), as the notebook "
    "prints, but only at a rho that an early switch does not survive, where 1-SAM ends on a 2-cycle, not a minimum."
)
CODE_VERSION = 2

# Train losses of the last two steps this far apart (relative): the run has not settled (still moving, or a 2-cycle).
UNSETTLED_RTOL = 1e-3


@dataclasses.dataclass(frozen=True)
class Config:
    step_size_times_d: float = 1.0
    init_scale: float = 0.1
    phase_steps: int = NOTEBOOK_STEPS  # every run has two phases: 2 * phase_steps updates
    rho_erm_to_sam: float = 20.0  # the notebook's rho = 10.0 for one_SAM_GD
    rho_sam_to_erm: float = 0.35  # the notebook's rho = 0.175
    switch_steps: tuple[int, ...] = (0, 30, 100, 300, 1000, 3000, 10_001, 15_000, 19_000)
    erm_to_sam_rhos: tuple[float, ...] = (0.35, 0.7, 1.4, 2.5, 5.0, 10.0, 14.0, 20.0, 28.0, 40.0)
    sam_to_erm_rhos: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4)
    interpolation_alphas: tuple[float, float, int] = (-1.0, 2.0, 100)  # np.linspace arguments, as cell 7
    num_records: int = 120


def config(quick: bool) -> Config:
    if quick:
        # After 300 ERM steps the model is far from interpolating and 1-SAM at rho = 20 diverges.
        return Config(phase_steps=300, rho_erm_to_sam=2.5, switch_steps=(0, 100, 300, 450), erm_to_sam_rhos=(0.35, 2.5, 20.0),
                      sam_to_erm_rhos=(0.1, 0.35), interpolation_alphas=(-1.0, 2.0, 31), num_records=20)
    return Config()


def _check(cfg: Config) -> None:
    if cfg.phase_steps not in cfg.switch_steps:
        raise ValueError(f"switch_steps must contain phase_steps={cfg.phase_steps} (the notebook's switch), got {cfg.switch_steps}")
    if any(not 0 <= k < 2 * cfg.phase_steps for k in cfg.switch_steps):
        raise ValueError(f"switch_steps must lie in [0, 2 * phase_steps), got {cfg.switch_steps}")
    if cfg.rho_erm_to_sam not in cfg.erm_to_sam_rhos:
        raise ValueError(f"erm_to_sam_rhos must contain rho_erm_to_sam={cfg.rho_erm_to_sam}")
    if cfg.rho_sam_to_erm not in cfg.sam_to_erm_rhos:
        raise ValueError(f"sam_to_erm_rhos must contain rho_sam_to_erm={cfg.rho_sam_to_erm}")


def record_steps(cfg: Config) -> np.ndarray:
    """Log-spaced steps plus the switch step, the last one and the one before it (to see whether a run has settled)."""
    total = 2 * cfg.phase_steps
    extra = [cfg.phase_steps, total - 1, total]
    return np.unique(np.concatenate([train.log_steps(total, cfg.num_records), extra]))


def switching_runs(cfg: Config, problem: dln.SparseRegressionData, direction: str, switch_steps, rhos) -> train.TrainResult:
    """``direction`` ∈ {"erm_to_sam", "sam_to_erm"} over ``switch_steps × rhos``, one compiled, vmapped call.

    Every run has ``2 * phase_steps`` updates: ERM for the first ``k`` and
    1-SAM (unnormalized, our ρ) for the rest, or the other way round. The
    result has leading axes ``(len(switch_steps), len(rhos))`` and records
    train and test loss at :func:`record_steps`. Conventions: [rho-sam], [m], [record].
    """
    if direction not in ("erm_to_sam", "sam_to_erm"):
        raise ValueError(f"direction must be 'erm_to_sam' or 'sam_to_erm', got {direction!r}")
    params0 = dln.init_uv(problem.train["x"].shape[1], cfg.init_scale)
    metrics = lambda p: {"train": dln.loss_uv(p, problem.train), "test": dln.loss_uv(p, problem.test)}

    def one(k, rho):
        one_sam = sam.SAM(rho, m=1, normalize=False)
        phases = (sam.ERM(), one_sam) if direction == "erm_to_sam" else (one_sam, sam.ERM())
        return train.run(dln.loss_uv, params0, problem.train, variant=train.switch(*phases, k),
                         num_steps=2 * cfg.phase_steps, learning_rate=cfg.step_size_times_d / problem.train["x"].shape[1],
                         record_steps=record_steps(cfg), metrics_fn=metrics)

    grid = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))
    return grid(jnp.asarray(switch_steps, dtype=jnp.int32), jnp.asarray(rhos))


def erm_run(cfg: Config, problem: dln.SparseRegressionData) -> train.TrainResult:
    """ERM for ``2 * phase_steps`` updates; its metrics include ``u`` and ``v`` (the ERM solution at the switch)."""
    params0 = dln.init_uv(problem.train["x"].shape[1], cfg.init_scale)
    metrics = lambda p: {"train": dln.loss_uv(p, problem.train), "test": dln.loss_uv(p, problem.test), **p}
    return jax.jit(lambda: train.run(
        dln.loss_uv, params0, problem.train, variant=sam.ERM(), num_steps=2 * cfg.phase_steps,
        learning_rate=cfg.step_size_times_d / problem.train["x"].shape[1], record_steps=record_steps(cfg),
        metrics_fn=metrics))()


def _at(result: train.TrainResult, step: int) -> int:
    return int(np.flatnonzero(np.asarray(result.steps) == step)[0])


def notebook_cells(cfg: Config, problem: dln.SparseRegressionData, erm_to_sam=None, sam_to_erm=None) -> dict:
    """Cells 5 and 7 of the notebook: its five printed test losses and the cell-7 interpolation.

    Returns the ERM, ERM→1-SAM and 1-SAM→ERM runs (unbatched) and
    ``interp_alpha``, ``interp_train``, ``interp_test`` along
    ``(1 − α) w_{ERM→1SAM} + α w_ERM`` (the notebook's orientation). The two
    switching runs are computed by :func:`switching_runs` unless given
    (``run`` passes its grid's cells, which are the same runs).
    Conventions: [rho-notebook], [record].
    """
    erm = train.check_finite(erm_run(cfg, problem), names=())
    one = lambda direction, rho: jax.tree.map(
        lambda x: x[0, 0], switching_runs(cfg, problem, direction, [cfg.phase_steps], [rho]))
    erm_to_sam = train.check_finite(one("erm_to_sam", cfg.rho_erm_to_sam) if erm_to_sam is None else erm_to_sam)
    sam_to_erm = train.check_finite(one("sam_to_erm", cfg.rho_sam_to_erm) if sam_to_erm is None else sam_to_erm)
    i = _at(erm, cfg.phase_steps)
    erm_at_switch = {"u": erm.metrics["u"][i], "v": erm.metrics["v"][i]}
    alphas = np.linspace(*cfg.interpolation_alphas)
    along = lambda batch: np.asarray(linear_interpolation(dln.loss_uv, erm_to_sam.params, erm_at_switch, batch, alphas))
    return {"erm": erm, "erm_to_sam": erm_to_sam, "sam_to_erm": sam_to_erm,
            "interp_alpha": alphas, "interp_train": along(problem.train), "interp_test": along(problem.test)}


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    _check(cfg)
    problem = notebook_problem()
    out: dict = {"switch_steps": np.asarray(cfg.switch_steps)}
    notebook_runs = {}
    for i, (direction, rhos, rho) in enumerate((("erm_to_sam", cfg.erm_to_sam_rhos, cfg.rho_erm_to_sam),
                                                 ("sam_to_erm", cfg.sam_to_erm_rhos, cfg.rho_sam_to_erm))):
        result = switching_runs(cfg, problem, direction, cfg.switch_steps, rhos)
        # The notebook's run is one cell of the grid (checked by _check).
        cell = (list(cfg.switch_steps).index(cfg.phase_steps), list(rhos).index(rho))
        notebook_runs[direction] = jax.tree.map(lambda x: x[cell], result)
        diverged = np.asarray(result.diverged_step)
        # A diverged run is kept as NaN and drawn as a marked cell; never as a number.
        final = lambda m, j=-1: np.where(diverged >= 0, np.nan, np.asarray(result.metrics[m][..., j]))
        out[f"grid_{direction}_rhos"] = np.asarray(rhos)
        out[f"grid_{direction}_test"] = final("test")
        out[f"grid_{direction}_train"] = final("train")
        out[f"grid_{direction}_train_previous"] = final("train", -2)
        out[f"grid_{direction}_diverged_step"] = diverged
        if progress is not None:
            progress(0.4 * (i + 1))
    cells = notebook_cells(cfg, problem, **notebook_runs)
    out["steps"] = np.asarray(cells["erm"].steps)
    for name in ("erm", "erm_to_sam", "sam_to_erm"):
        out[f"{name}_train"] = np.asarray(cells[name].metrics["train"])
        out[f"{name}_test"] = np.asarray(cells[name].metrics["test"])
    for key in ("interp_alpha", "interp_train", "interp_test"):
        out[key] = cells[key]
    return out


ALLOW_NONFINITE = frozenset(
    f"grid_{d}_{m}" for d in ("erm_to_sam", "sam_to_erm") for m in ("test", "train", "train_previous")
)


def _unsettled(result: dict, direction: str) -> np.ndarray:
    now, before = result[f"grid_{direction}_train"], result[f"grid_{direction}_train_previous"]
    with np.errstate(invalid="ignore"):
        return np.abs(now - before) > UNSETTLED_RTOL * np.maximum(now, before)


def _curves(ax, result: dict, cfg: Config, metric: str) -> None:
    steps, n = result["steps"], cfg.phase_steps
    after = steps >= n
    label = lambda key, value: f"{VARIANT_LABELS[key]}: {value:.3g}"
    ax.plot(steps, result[f"erm_{metric}"], color=VARIANT_COLORS["erm"], label=label("erm", result[f"erm_{metric}"][-1]))
    # ERM→1-SAM is ERM until the switch: drawn from the switch on only, so ERM's curve is not hidden.
    ax.plot(steps[after], result[f"erm_to_sam_{metric}"][after], color=VARIANT_COLORS["erm_to_sam"], ls="--",
            label=label("erm_to_sam", result[f"erm_to_sam_{metric}"][-1]) + f" (1-SAM, $\\rho$ = {cfg.rho_erm_to_sam:g})")
    ax.plot(steps, result[f"sam_to_erm_{metric}"], color=VARIANT_COLORS["sam_to_erm"], ls="-.",
            label=label("sam_to_erm", result[f"sam_to_erm_{metric}"][-1]) + f" (1-SAM, $\\rho$ = {cfg.rho_sam_to_erm:g})")
    ax.axvline(n, color="0.5", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel=f"step (switch at {n})", ylabel=f"{metric} loss")
    ax.legend(loc="upper right", fontsize=9)


def _mark_diverged(ax, xs, diverged, color) -> None:
    xs = np.asarray(xs)[diverged]
    if xs.size:
        ax.plot(xs, np.full(xs.size, 0.97), "x", ms=8, mew=2, color=color, transform=ax.get_xaxis_transform(), clip_on=False)


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(13.3, 8.2), layout="constrained")
    (ax_test, ax_train, ax_path), (ax_grid, ax_rho, ax_k) = fig.subplots(2, 3)
    _curves(ax_test, result, cfg, "test")
    ax_test.set_title("(a) notebook cells 5-6: test loss")
    _curves(ax_train, result, cfg, "train")
    ax_train.set_title("(b) notebook cells 5-6: train loss")

    alpha = result["interp_alpha"]
    ax_path.plot(alpha, result["interp_test"], color="0.25", label="test loss")
    ax_path.plot(alpha, result["interp_train"], color="0.25", ls="--", label="train loss")
    ends = [(0.0, "erm_to_sam", "*", 14), (1.0, "erm", "o", 8)]
    for a, key, marker, size in ends:
        j = int(np.argmin(np.abs(alpha - a)))
        ax_path.plot(alpha[j], result["interp_test"][j], marker, ms=size, color=VARIANT_COLORS[key],
                     label=f"{VARIANT_LABELS[key]} (test)", ls="none")
    ax_path.set(yscale="log", xlabel=r"$\alpha$ in $(1-\alpha)\,w_{ERM\to SAM} + \alpha\,w_{ERM}$", ylabel="loss",
                title="(c) notebook cell 7: the linear path")
    ax_path.legend(loc="upper center", fontsize=9, ncol=2)

    ks, rhos = result["switch_steps"], result["grid_erm_to_sam_rhos"]
    test = result["grid_erm_to_sam_test"]
    image = ax_grid.imshow(test, norm=LogNorm(np.nanmin(test), np.nanmax(test)), cmap="viridis", aspect="auto", origin="lower")
    ax_grid.set_facecolor("0.85")
    for i, j in np.argwhere(result["grid_erm_to_sam_diverged_step"] >= 0):
        ax_grid.text(j, i, "×", ha="center", va="center", fontsize=11, color="k")
    for i, j in np.argwhere(_unsettled(result, "erm_to_sam")):
        ax_grid.text(j, i, "~", ha="center", va="center", fontsize=12, color="w")
    i0, j0 = list(ks).index(cfg.phase_steps), list(rhos).index(cfg.rho_erm_to_sam)
    ax_grid.add_patch(matplotlib.patches.Rectangle((j0 - 0.5, i0 - 0.5), 1, 1, fill=False, ec=VARIANT_COLORS["erm_to_sam"], lw=2.5))
    ax_grid.set_xticks(range(len(rhos)), [f"{r:g}" for r in rhos], rotation=45)
    ax_grid.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax_grid.set(xlabel=r"1-SAM $\rho$ (ours)", ylabel="switch step k",
                title="(d) ERM → 1-SAM at k: final test loss")
    fig.colorbar(image, ax=ax_grid, label="test loss (×: diverged, ~: not settled)")

    k_col = list(ks).index(cfg.phase_steps)
    ax_rho.axhline(result["erm_test"][-1], color=VARIANT_COLORS["erm"], lw=1.2, label=VARIANT_LABELS["erm"])
    for direction, ls in (("erm_to_sam", "--"), ("sam_to_erm", "-.")):
        rhos_d = result[f"grid_{direction}_rhos"]
        color = VARIANT_COLORS[direction]
        ax_rho.plot(rhos_d, result[f"grid_{direction}_test"][k_col], ls=ls, marker="o", color=color,
                    label=f"{VARIANT_LABELS[direction]}, test")
        ax_rho.plot(rhos_d, result[f"grid_{direction}_train"][k_col], ls=":", marker="s", ms=4, color=color, mfc="none",
                    label=f"{VARIANT_LABELS[direction]}, train")
        _mark_diverged(ax_rho, rhos_d, result[f"grid_{direction}_diverged_step"][k_col] >= 0, color)
    ax_rho.set(xscale="log", yscale="log", xlabel=r"1-SAM $\rho$ (ours; notebook = ours/2)", ylabel="final loss",
               title=f"(e) switch at k = {cfg.phase_steps}, against $\\rho$")
    # 20 decades: a label every third one, and no minor ticks (thousands of them make saving take seconds).
    ax_rho.yaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=9))
    ax_rho.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax_rho.plot([], [], "x", ms=8, mew=2, color="0.3", label="diverged")
    ax_rho.legend(loc="lower left", fontsize=8.5)

    xk = np.maximum(ks, 10)
    ax_k.axhline(result["erm_test"][-1], color=VARIANT_COLORS["erm"], lw=1.2, label=VARIANT_LABELS["erm"])
    shown = [("erm_to_sam", cfg.rho_erm_to_sam, "--", "o"), ("sam_to_erm", cfg.rho_sam_to_erm, "-.", "s")]
    if cfg.rho_erm_to_sam != 2.5:  # the best rho of the grid for an early switch
        shown.insert(1, ("erm_to_sam", 2.5, ":", "^"))
    for direction, rho, ls, marker in shown:
        rhos_d = list(result[f"grid_{direction}_rhos"])
        if rho not in rhos_d:
            continue
        j = rhos_d.index(rho)
        color = VARIANT_COLORS[direction]
        ax_k.plot(xk, result[f"grid_{direction}_test"][:, j], ls=ls, marker=marker, color=color,
                  label=f"{VARIANT_LABELS[direction]}, $\\rho$ = {rho:g}")
        _mark_diverged(ax_k, xk, result[f"grid_{direction}_diverged_step"][:, j] >= 0, color)
    ax_k.plot([], [], "x", ms=8, mew=2, color="0.3", label="diverged")
    ax_k.set(xscale="log", yscale="log", xlabel=f"switch step k (k = 0 drawn at 10; {2 * cfg.phase_steps} steps in all)",
             ylabel="final test loss",
             title="(f) against the switch step k")
    ax_k.legend(loc="lower left", fontsize=9)
    fig.suptitle(
        f"Notebook instance (n = 20, d = 30), $\\beta = u\\odot v$, $u_0$ = {cfg.init_scale:g}, GD step "
        f"{cfg.step_size_times_d:g}/d, unnormalized 1-SAM; our $\\rho$ = 2 × notebook $\\rho$",
        fontsize=CAPTION_FONTSIZE,
    )
    return fig


def summary(result: dict, cfg: Config) -> dict[str, float]:
    ks = list(result["switch_steps"])
    i = list(result["steps"]).index(cfg.phase_steps)
    alpha = result["interp_alpha"]
    between = (alpha >= 0) & (alpha <= 1)
    out = {
        "erm_test_two_phases": float(result["erm_test"][-1]),
        "erm_test_one_phase": float(result["erm_test"][i]),
        "erm_train_one_phase": float(result["erm_train"][i]),
        "erm_to_sam_test": float(result["erm_to_sam_test"][-1]),
        "erm_to_sam_train": float(result["erm_to_sam_train"][-1]),
        "erm_to_sam_train_previous_step": float(result["erm_to_sam_train"][-2]),
        "one_sam_test_one_phase": float(result["sam_to_erm_test"][i]),
        "sam_to_erm_test": float(result["sam_to_erm_test"][-1]),
        "interp_max_train_between": float(result["interp_train"][between].max()),
        "interp_max_test_between": float(result["interp_test"][between].max()),
    }
    for direction in ("erm_to_sam", "sam_to_erm"):
        test = result[f"grid_{direction}_test"]
        i_best, j_best = np.unravel_index(np.nanargmin(test), test.shape)
        out[f"grid_{direction}_best_test"] = float(test[i_best, j_best])
        out[f"grid_{direction}_best_switch_step"] = float(ks[i_best])
        out[f"grid_{direction}_best_rho"] = float(result[f"grid_{direction}_rhos"][j_best])
        out[f"grid_{direction}_diverged_fraction"] = float(np.mean(result[f"grid_{direction}_diverged_step"] >= 0))
    return out
