"""The ResNet switching study of Andriushchenko & Flammarion (2022), CPU-sized, as one population.

The protocol of the talk's deep-network experiments, shrunk until it runs
in minutes on a 2-core CPU: a narrow, shallow ResNet — ResNet-10, i.e. the
CIFAR-style ResNet-18 with one basic block per stage instead of two
(``stage_blocks=(1, 1, 1, 1)``), width 1/16 (4, 8, 16, 32 channels),
BatchNorm — on a fixed subset of 512 Fashion-MNIST training images and 500
test images (Debian's files), averaged 3×3 to 9×9, no augmentation,
float32, SGD with momentum 0.9, batch 32, learning rate 0.05 with a cosine
schedule, 12 epochs (parameters: :data:`samtheory.nn.study_config.CPU`).
With 0 % and 60 % symmetric label noise ([label-noise]), three seeds each:

* ERM, SAM (n-SAM, ρ = ``rho``), ERM → SAM and SAM → ERM switched at two
  epochs, 4 and 8 (the talk: SAM matters most late in training);
* ERM → SAM **fine-tuning** from the converged ERM run (fresh momentum,
  constant small learning rate), against continuing ERM with the same
  budget;
* the **linear path** between the ERM solution and its SAM fine-tuning, with
  BatchNorm statistics recomputed at every point (the talk: the two minima
  are linearly connected);
* per epoch, the clean test error and the fraction of wrong labels fitted
  (noisy training examples predicted as their noisy label: the talk says
  SAM resists label noise but memorizes it eventually).

Every phase is one program of :mod:`samtheory.nn.population`: the 36
training runs are one compiled call, the 12 fine-tuning runs a second, the
6 interpolation paths (vmapped over pairs and α) a third. On the CPU the
runs go one after another inside each program (``batching="map"``: bitwise
the runs alone); the GPU preset vmaps them.

It is one small-scale setting (< 1 % of the training set at 9×9 pixels, a
16×-narrower network of half ResNet-18's depth, 12 epochs, 3 seeds): what
it shows or fails to show about the talk's claims holds for this setting
only, within its seed spread (every seed is drawn), and says nothing about
ResNet-18 on the full data. The GPU version is ``samtheory resnet
population-study --preset gpu`` (docs/resnet.md).

What the committed run shows (means over the 3 seeds, per-seed paired
differences against ERM, which shares each seed's initialization and data
order; 500 test images, so one image is 0.2 points):

* 0 % noise: ERM 23.5 %, SAM 23.3 % (per seed +1.0, +0.4, −1.8 points);
  every switched run lies within the seed spread. No SAM effect is
  resolved, so nothing about *when* SAM matters can be read here.
* 60 % noise: SAM 46.3 % against ERM 53.3 % (better in all 3 seeds: −1.8,
  −5.4, −13.6). SAM for the last 4 epochs only (ERM → SAM at 8) gets −2.7,
  for the first 4 only (SAM → ERM at 4) −4.7; for the last 8 (ERM → SAM at
  4) −6.3, for the first 8 (SAM → ERM at 8) −6.5. Here SAM's gain grows
  with the number of SAM epochs, and early SAM is worth at least as much as
  late SAM (first 4 against last 4 epochs: better in 2 of 3 seeds): the
  talk's "SAM matters most late" is not supported in this setting (with a
  cosine schedule the last epochs have a small step).
* ERM at 60 % noise is **not converged**: at the end it fits 41 % of the
  wrong labels and errs on 42 % of its given training labels; the cosine
  schedule reaches a learning rate of 0 first. So the fine-tuning starts
  from an unconverged ERM run: SAM fine-tuning ends 1.9 points below ERM
  continued (all 3 seeds) but not below its starting point (+0.3), because
  continued ERM gets worse (53.3 → 55.5 %); at 0 % noise
  the two differ by −0.2 points (+0.2, 0.0, −0.8): unresolved.
* The linear path from ERM to its SAM fine-tuning has no barrier: at most
  0.3 points of test error above the worse end, none on the training set
  (the fine-tuning is short, at a small learning rate).
* SAM resists the label noise: it fits 21 % of the wrong labels at the end
  against ERM's 41 % (15/20/29 % against 42/30/51 % per seed; chance is
  about 10 %). Whether it memorizes *eventually* is not resolved: its
  fraction rises from 10 % to 21 % and levels off only as the learning
  rate reaches 0, where ERM has not finished memorizing either.

Conventions: [loss-mean], [rho-sam], [rng], [label-noise], [float-nn].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from samtheory.figures import FigureUnavailable
from samtheory.nn.study_config import CPU, StudyConfig
from samtheory.style import variant_color, variant_label

NAME = "resnet_population_cpu"
TITLE = "Narrow ResNet-10 on a Fashion-MNIST subset: the switching study as one population (CPU)"
CAPTION = "One small CPU setting (ResNet-10, 512 images at 9×9, 12 epochs, 3 seeds): SAM helps only at 60 % noise, where it fits half the wrong labels ERM fits, early SAM helps as much as late, and ERM is not converged."
CODE_VERSION = 1

#: The training runs of each (noise rate, seed): kind and switch epoch (None: no switch).
_KIND_ORDER = ("erm", "sam", "erm_to_sam", "sam_to_erm")
#: Style keys of samtheory.style (the runs' SAM is n-SAM).
_STYLE = {"erm": "erm", "sam": "n_sam", "erm_to_sam": "erm_to_sam", "sam_to_erm": "sam_to_erm"}


#: The study's own config type: the figure's config is a StudyConfig, so the two cannot drift apart.
Config = StudyConfig


def config(quick: bool) -> Config:
    """Full: :data:`samtheory.nn.study_config.CPU`. Quick: 64 images, 2 epochs, one seed, unoptimized XLA."""
    if not quick:
        return CPU
    return dataclasses.replace(CPU, n_train=64, n_test=64, batch_size=32, epochs=2, switch_epochs=(1,), seeds=(0,),
                               finetune_epochs=1, alphas=3, eval_batch_size=64, fast_compile=True)


def run(config: Config, progress: Callable[[float], None] | None) -> dict:
    try:
        from samtheory.nn.population_study import run_study
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("flax"):
            raise
        raise FigureUnavailable("needs flax (the nn extra): python3 -m pip install -e '.[nn]'") from missing
    return run_study(config, progress)


def _kind_index(result: dict) -> dict[tuple[str, int | None], int]:
    index = {}
    for i, name in enumerate(str(result["run_kinds"]).split(",")):
        kind, _, k = name.partition("@")
        index[(kind, int(k) if k else None)] = i
    return index


def _final(result: dict) -> np.ndarray:
    """Final clean test error, (noise, seed, run)."""
    return result["test_error"][..., -1]


def plot(result: dict, config: Config) -> Figure:
    from matplotlib.ticker import MaxNLocator

    index = _kind_index(result)
    final = _final(result)
    E = config.epochs
    rows = len(config.noise_rates)
    fig = Figure(figsize=(13.33, 3.4 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, 4, squeeze=False)
    seeds_note = f"{len(config.seeds)} seeds: dots and thin lines; thick line: their mean"
    for r, noise in enumerate(config.noise_rates):
        pct = f"{100 * noise:.0f} % noise"  # label noise ([label-noise]); short, so titles clear the next panel
        # (a) final test error against the switch epoch: k = 0 and k = E are the unswitched runs.
        ax = axes[r, 0]
        ks = np.asarray([0, *config.switch_epochs, E])
        for kind, ends in (("erm_to_sam", ("sam", "erm")), ("sam_to_erm", ("erm", "sam"))):
            cols = [index[(ends[0], None)], *[index[(kind, k)] for k in config.switch_epochs], index[(ends[1], None)]]
            values = 100 * final[r][:, cols]
            color = variant_color(_STYLE[kind])
            for s in range(values.shape[0]):
                ax.plot(ks, values[s], "o", color=color, alpha=0.45, markersize=4,
                        markeredgecolor="black" if kind == "sam_to_erm" else color, markeredgewidth=0.5)
            ax.plot(ks, values.mean(axis=0), "-", color=color, label=variant_label(_STYLE[kind]), zorder=3)
        ax.set_xticks(ks)
        ax.set_xlabel("switch epoch k")
        ax.set_ylabel("final test error (%)")
        ax.set_title(f"{pct}: switch at k", loc="left")
        # (b) fine-tuning from the converged ERM run.
        ax = axes[r, 1]
        steps = np.arange(config.finetune_epochs + 1)
        start = 100 * final[r][:, index[("erm", None)]]
        for j, (variant, key) in enumerate((("sam", "n_sam"), ("erm", "erm"))):
            curve = np.concatenate([start[:, None], 100 * result["finetune_test_error"][j, r]], axis=1)
            label = f"{variant_label('erm')} → {variant_label(key)} fine-tuning" if variant == "sam" else "ERM continued"
            for s in range(curve.shape[0]):
                ax.plot(steps, curve[s], color=variant_color(key), alpha=0.3, linewidth=1)
            ax.plot(steps, curve.mean(axis=0), color=variant_color(key), label=label,
                    linestyle="-" if variant == "sam" else "--")
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{pct}: fine-tuning ERM", loc="left")
        # (c) the straight line between ERM and its SAM fine-tuning, BatchNorm recomputed.
        ax = axes[r, 2]
        for key, name, style in (("path_test_error", "path: test error", "-"),
                                 ("path_train_error", "path: train error (given labels)", ":")):
            values = 100 * result[key][r]
            # Grey, not ERM's black: a path is neither variant.
            ax.plot(result["alphas"], values.T, color="#b0b0b0", linewidth=1, linestyle=style)
            ax.plot(result["alphas"], values.mean(axis=0), color="#707070", linestyle=style, label=name)
        ax.set_xticks([0, 0.5, 1], ["ERM", "0.5", "ERM → SAM"])
        ax.set_xlabel("α (BatchNorm recomputed)")
        ax.set_ylabel("error (%)")
        ax.set_title(f"{pct}: linear path", loc="left")
        # (d) per epoch: wrong labels fitted (noisy rows), clean test error (clean rows).
        ax = axes[r, 3]
        epochs = np.arange(1, E + 1)
        noisy_rows = [i for i, rate in enumerate(config.noise_rates) if rate > 0]
        for kind in ("erm", "sam"):
            key = _STYLE[kind]
            if noise > 0:
                values = 100 * result["noisy_fit"][noisy_rows.index(r)][:, index[(kind, None)]]
                ylabel = "wrong labels fitted (%)"
                title = f"{pct}: memorization"
            else:
                values = 100 * result["test_error"][r][:, index[(kind, None)]]
                ylabel = "test error (%)"
                title = f"{pct}: test error"
            for s in range(values.shape[0]):
                ax.plot(epochs, values[s], color=variant_color(key), alpha=0.3, linewidth=1)
            ax.plot(epochs, values.mean(axis=0), color=variant_color(key), label=variant_label(key))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
    # One legend below the panels, so that no legend box hides a seed's curve or dot.
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=4, title=seeds_note)
    return fig


def summary(result: dict, config: Config) -> dict[str, float]:
    index = _kind_index(result)
    final = _final(result)
    out: dict[str, float] = {}
    for r, noise in enumerate(config.noise_rates):
        tag = f"noise{int(round(100 * noise))}"
        for (kind, k), i in index.items():
            out[f"{tag}_{kind}{'' if k is None else k}_test_error"] = float(final[r][:, i].mean())
        out[f"{tag}_finetune_sam_test_error"] = float(result["finetune_test_error"][0, r][:, -1].mean())
        out[f"{tag}_finetune_erm_test_error"] = float(result["finetune_test_error"][1, r][:, -1].mean())
        path = result["path_test_error"][r]
        out[f"{tag}_path_test_barrier"] = float(np.mean(path.max(axis=1) - np.maximum(path[:, 0], path[:, -1])))
        train_path = result["path_train_error"][r]
        out[f"{tag}_path_train_barrier"] = float(
            np.mean(train_path.max(axis=1) - np.maximum(train_path[:, 0], train_path[:, -1])))
    noisy_rows = [i for i, rate in enumerate(config.noise_rates) if rate > 0]
    for j, r in enumerate(noisy_rows):
        tag = f"noise{int(round(100 * config.noise_rates[r]))}"
        for kind in ("erm", "sam"):
            curve = result["noisy_fit"][j][:, index[(kind, None)]].mean(axis=0)
            out[f"{tag}_{kind}_noisy_fit_final"] = float(curve[-1])
            out[f"{tag}_{kind}_noisy_fit_half"] = float(curve[len(curve) // 2 - 1])
    out["train_images_per_s"] = float(result["train_images_per_s"])
    return out
