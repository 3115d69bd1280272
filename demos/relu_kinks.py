import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="ReLU kinks")


@app.cell
def _():
    import sys

    import jax
    import jax.numpy as jnp
    import marimo as mo
    import numpy as np

    from samtheory import demo_support as common, results
    from samtheory.models import relu1d

    # The kinks are counted by the relu_kinks figure's own functions: experiments/ of this source tree, which
    # is not installed (and not on the path when the notebook runs from elsewhere).
    if str(mo.notebook_dir().parent) not in sys.path:
        sys.path.insert(0, str(mo.notebook_dir().parent))
    from experiments.relu_kinks import FIT_TRAIN_LOSS, interpolant_kink_lower_bound, kinks_on_data
    return (FIT_TRAIN_LOSS, common, interpolant_kink_lower_bound, jax, jnp, kinks_on_data, mo, np, relu1d,
            results)


@app.cell
def _(mo, results):
    CACHE_PATH = mo.notebook_dir() / "cache" / "relu_kinks.npz"
    CACHED, CACHE_META = results.load_result_npz(CACHE_PATH)
    _cfg = CACHE_META["config"]
    mo.md(rf"""
    # ReLU kinks: ERM against 1-SAM on a 1-D regression

    Two-layer ReLU networks $f(x) = \sum_j a_j\,\mathrm{{relu}}(w_j x + b_j) + c$ of width {_cfg['width']} fitted to the
    12 Maennel points of the authors' notebook (`relu1d.maennel_points`). The talk: SAM sparsifies the *kinks*,
    1-SAM most. **The trained networks are cached, not trained here**: {_cfg['num_steps']:,} full-batch GD steps per
    run are too slow for a slider. `demos/build_cache.py` made them with `train.run` (1-SAM, normalized, ρ ∈
    {list(_cfg['rhos'])}; ρ = 0 is ERM exactly; seed {_cfg['seed']}; run {CACHE_META['provenance'].get('utc', '?')}).
    What is live: the fitted functions, and the kinks counted with the tolerances below (`relu1d.effective_kinks`
    through the `relu_kinks` figure's `kinks_on_data`). Conventions: [rho-sam], [m], [normalize].
    """)
    return CACHED, CACHE_META


@app.cell
def _(CACHED, common, jax, jnp, np, relu1d):
    DATA_R = relu1d.maennel_points()
    RHOS_R = np.asarray(CACHED["rhos"])
    PARAMS_R = [{k: jnp.asarray(CACHED[f"param_{k}"][i]) for k in ("w", "b", "a", "c")} for i in range(RHOS_R.size)]
    XS_R = jnp.linspace(-1.6, 1.75, 400)
    PREDICT_R = common.compile_once(jax.vmap(lambda p: relu1d.predict(p, XS_R)),
                                    jax.tree.map(lambda *a: jnp.stack(a), *PARAMS_R))
    STACKED_R = jax.tree.map(lambda *a: jnp.stack(a), *PARAMS_R)
    return DATA_R, PARAMS_R, PREDICT_R, RHOS_R, STACKED_R, XS_R


@app.cell
def _(RHOS_R, mo):
    rho_r = mo.ui.slider(steps=list(range(1, RHOS_R.size)), value=3, label="1-SAM run (index of ρ)", show_value=True)
    merge_r = mo.ui.slider(steps=[0.02, 0.05, 0.1], value=0.05, label="merge tolerance (× spacing Δ)", show_value=True)
    jump_r = mo.ui.slider(steps=[0.01, 0.02, 0.05, 0.1], value=0.05, label="jump tolerance (× largest jump)",
                          show_value=True)
    mo.hstack([rho_r, merge_r, jump_r])
    return jump_r, merge_r, rho_r


@app.cell
def _(CACHED, DATA_R, FIT_TRAIN_LOSS, PARAMS_R, PREDICT_R, RHOS_R, STACKED_R, XS_R, common,
      interpolant_kink_lower_bound, kinks_on_data, mo, np):
    timer_r = common.timer()
    _floor = interpolant_kink_lower_bound(DATA_R["x"], DATA_R["y"])
    # The fitted functions do not depend on the controls (the runs are cached): evaluated once, at load.
    _curves = np.asarray(PREDICT_R(STACKED_R))
    _xs, _data_x, _data_y = np.asarray(XS_R), np.asarray(DATA_R["x"]), np.asarray(DATA_R["y"])

    @timer_r
    def update_relu(index, merge_frac, jump_frac):
        panels = ((0, "erm"), (index, "one_sam"))
        kinks = {key: kinks_on_data(PARAMS_R[i], DATA_R["x"], merge_frac=merge_frac, jump_frac=jump_frac).position
                 for i, key in panels}
        counts = {key: position.size for key, position in kinks.items()}
        fig, axes = common.figure(12.5, 4.4, ncols=2)
        for ax, (i, key) in zip(axes, panels):
            color = common.VARIANT_COLORS[key]
            ax.plot(_xs, _curves[i], color=color, lw=2)
            ax.plot(_data_x, _data_y, "o", color="0.3", ms=6, zorder=3)
            for p in kinks[key]:
                ax.axvline(p, color=color, lw=0.8, ls=":")
            fits = float(CACHED["train_loss"][i]) <= FIT_TRAIN_LOSS
            name = "ERM" if key == "erm" else f"1-SAM, ρ = {RHOS_R[i]:g}"
            ax.set(xlabel="x", ylabel="f(x)", ylim=(-2.2, 3.2),
                   title=f"{name}: {counts[key]} kinks" + ("" if fits else " (does not fit: train loss "
                                                            f"{float(CACHED['train_loss'][i]):.1e})"))
        text = (f"kinks inside the data range: ERM **{counts['erm']}**, 1-SAM (ρ = {RHOS_R[index]:g}) "
                f"**{counts['one_sam']}** · any interpolant needs ≥ {_floor}")
        return mo.vstack([mo.md(common.readout(text)), common.show(fig, alt="ReLU kinks")]), counts
    return timer_r, update_relu


@app.cell
def _(jump_r, merge_r, rho_r, update_relu):
    view_r, counts_r = update_relu(rho_r.value, merge_r.value, jump_r.value)
    view_r
    return


@app.cell
def _(CACHED, DATA_R, PARAMS_R, mo, np, relu1d, update_relu):
    # Checked against the library: the cached train losses are the networks' (the cache is what it says),
    # and 1-SAM at the default ρ has fewer kinks than ERM.
    for _i, _p in enumerate(PARAMS_R):
        assert np.isclose(float(relu1d.loss_relu1d(_p, DATA_R)), float(CACHED["train_loss"][_i]), rtol=1e-9)
    _, _c = update_relu(3, 0.05, 0.05)
    assert _c["one_sam"] < _c["erm"], _c
    checks_r = "passed"
    mo.md(f"_Checked: the cached networks' train losses match `loss_relu1d`; at ρ = 0.05 1-SAM has {_c['one_sam']} "
          f"kinks against ERM's {_c['erm']} (one seed: the `relu_kinks` figure has four) ({checks_r})._")
    return (checks_r,)


if __name__ == "__main__":
    app.run()
