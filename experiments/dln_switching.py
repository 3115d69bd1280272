"""SAM↔ERM switching on the diagonal network, and linear connectivity of the ERM and ERM→SAM solutions.

Andriushchenko & Flammarion (2022, §5 and the talk) find for deep nets that
SAM matters most late in training, that finetuning an ERM model with SAM
helps, and that the two minima are linearly connected, and say the same
phenomena appear on diagonal networks. This figure measures them on the
notebook's DLN instance (β = u⊙v, u₀ = 0.1, v₀ = 0, GD step 15/d, 10⁴
steps, 1-SAM unnormalized at our ρ = 0.2 = the notebook's 0.1,
[rho-notebook]):

(a) final test loss of ERM→1-SAM and 1-SAM→ERM against the switch step k;
(b) test-loss curves for a few k;
(c) train and test loss along ``(1 − t) w_ERM + t w_{ERM→1SAM}`` (in the
    (u, v) parameters) for the best switch point.

Conventions: [loss-mean], [loss-sq], [alpha], [rho-sam], [m], [rho-notebook].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.dln_sparse_regression import notebook_problem
from samtheory import sam, train
from samtheory.models import dln

NAME = "dln_switching"
TITLE = "DLN: ERM<->1-SAM switching and linear interpolation between ERM and ERM->SAM solutions"
CAPTION = "Test loss of the diagonal network after switching between ERM and 1-SAM, and along the straight path between the ERM and ERM → 1-SAM solutions."
CODE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20
    d: int = 30
    k: int = 3
    n_test: int = 1000
    init_scale: float = 0.1
    step_size_times_d: float = 15.0
    num_steps: int = 10_000
    rho: float = 0.2
    switch_steps: tuple[int, ...] = (0, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)
    interpolation_points: int = 61


def config(quick: bool) -> Config:
    if quick:
        return Config(num_steps=1000, switch_steps=(0, 100, 1000), interpolation_points=11)
    return Config()


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    train_np, test_np = notebook_problem(cfg.n, cfg.d, cfg.k, cfg.n_test)
    data, test = jax.tree.map(jnp.asarray, train_np), jax.tree.map(jnp.asarray, test_np)
    params0 = dln.init_uv(cfg.d, cfg.init_scale)
    erm, one_sam = sam.ERM(), sam.SAM(cfg.rho, m=1, normalize=False)
    record = train.log_steps(cfg.num_steps, 50)
    metrics = lambda p: {"train": dln.loss_uv(p, data), "test": dln.loss_uv(p, test)}

    def run_schedule(schedule):
        result = train.run(dln.loss_uv, params0, data, variant=schedule, num_steps=cfg.num_steps,
                           learning_rate=cfg.step_size_times_d / cfg.d, record_steps=record, metrics_fn=metrics)
        return result

    out: dict = {"switch_steps": np.asarray(cfg.switch_steps), "steps": record}
    finals = {}
    for i, (direction, (first, second)) in enumerate((("erm_to_sam", (erm, one_sam)), ("sam_to_erm", (one_sam, erm)))):
        # The switch step is traced: one compiled, vmapped call per direction.
        over_k = jax.jit(jax.vmap(lambda k: run_schedule(train.switch(first, second, k))))
        result = train.check_finite(over_k(jnp.asarray(cfg.switch_steps)), names=(f"{direction}: switch index",))
        out[f"{direction}_test_curves"] = np.asarray(result.metrics["test"])
        out[f"{direction}_final_test"] = out[f"{direction}_test_curves"][:, -1]
        out[f"{direction}_final_train"] = np.asarray(result.metrics["train"][:, -1])
        finals[direction] = [jax.tree.map(lambda x, j=j: x[j], result.params) for j in range(len(cfg.switch_steps))]
        if progress is not None:
            progress((i + 1) / 2)

    # ERM→1-SAM at k = num_steps is plain ERM; k = 0 is plain 1-SAM.
    erm_params = finals["erm_to_sam"][list(cfg.switch_steps).index(cfg.num_steps)]
    candidates = [k for k in cfg.switch_steps if 0 < k < cfg.num_steps]
    best_k = min(candidates, key=lambda k: out["erm_to_sam_final_test"][list(cfg.switch_steps).index(k)])
    sam_params = finals["erm_to_sam"][list(cfg.switch_steps).index(best_k)]
    ts = np.linspace(-0.25, 1.25, cfg.interpolation_points)
    path = jax.vmap(lambda t: jax.tree.map(lambda a, b: (1 - t) * a + t * b, erm_params, sam_params))(jnp.asarray(ts))
    out["interp_t"] = ts
    out["interp_train"] = np.asarray(jax.vmap(lambda p: dln.loss_uv(p, data))(path))
    out["interp_test"] = np.asarray(jax.vmap(lambda p: dln.loss_uv(p, test))(path))
    out["best_switch_step"] = int(best_k)
    return out


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(13, 3.9), layout="constrained")
    ax_k, ax_curves, ax_interp = fig.subplots(1, 3)
    ks = np.maximum(result["switch_steps"], 1)
    ax_k.plot(ks, result["erm_to_sam_final_test"], "o-", color="tab:orange", label="ERM → 1-SAM at k")
    ax_k.plot(ks, result["sam_to_erm_final_test"], "s-", color="tab:green", label="1-SAM → ERM at k")
    ax_k.set(xscale="log", yscale="log", xlabel="switch step k (0 drawn at 1)", ylabel="final test loss",
             title=f"(a) switching, {cfg.num_steps} steps, $\\rho$ = {cfg.rho:g}")
    ax_k.legend(fontsize=7)
    steps = np.maximum(result["steps"], 1)
    shown = [k for k in (0, 100, 1000, cfg.num_steps) if k in set(result["switch_steps"].tolist())]
    for k in shown:
        i = list(result["switch_steps"]).index(k)
        label = "ERM" if k == cfg.num_steps else ("1-SAM" if k == 0 else f"ERM → 1-SAM at {k}")
        ax_curves.plot(steps, result["erm_to_sam_test_curves"][i], label=label)
    ax_curves.set(xscale="log", yscale="log", xlabel="step", ylabel="test loss", title="(b) test loss curves")
    ax_curves.legend(fontsize=7)
    t = result["interp_t"]
    ax_interp.plot(t, result["interp_train"], label="train")
    ax_interp.plot(t, result["interp_test"], label="test")
    ax_interp.axvline(0, color="k", lw=0.5, ls=":")
    ax_interp.axvline(1, color="k", lw=0.5, ls=":")
    ax_interp.set(yscale="log", xlabel="t", ylabel="loss",
                  title=f"(c) $(1-t)w_{{ERM}} + t\\,w_{{ERM\\to SAM}}$ (k = {result['best_switch_step']})")
    ax_interp.legend(fontsize=7)
    return fig


def summary(result: dict, cfg: Config) -> dict[str, float]:
    ks = list(result["switch_steps"])
    inside = (result["interp_t"] >= 0) & (result["interp_t"] <= 1)
    ends = max(result["interp_train"][np.argmin(np.abs(result["interp_t"]))],
               result["interp_train"][np.argmin(np.abs(result["interp_t"] - 1))])
    return {
        "erm_test": float(result["erm_to_sam_final_test"][ks.index(cfg.num_steps)]),
        "one_sam_test": float(result["erm_to_sam_final_test"][ks.index(0)]),
        "best_erm_to_sam_test": float(result["erm_to_sam_final_test"][ks.index(result["best_switch_step"])]),
        "best_switch_step": float(result["best_switch_step"]),
        "interp_max_train_loss_between": float(result["interp_train"][inside].max()),
        "interp_train_loss_at_ends": float(ends),
    }
