"""Paper figures: one module per figure, following the protocol of ``samtheory.figures``.

``FIGURE_MODULES`` is the registry. This folder is not installed: the
``samtheory figures`` command finds it (the current directory, else the
source tree; ``--experiments DIR``) and hands the pipeline a
``FigureRegistry("experiments")``, which imports ``experiments.<name>`` for
each name listed here, in this order; a module's ``NAME`` must equal its
name here. To add a figure, write ``experiments/<name>.py`` and append
``"<name>"`` (see ``docs/pipeline.md``). An experiment imports the library
and at most the shared helper ``_dln_variants``, never another experiment.
"""

#: Registered figure modules, in the order ``samtheory figures`` makes them.
FIGURE_MODULES: tuple[str, ...] = (
    "dln_sparse_regression",
    "dln_implicit_bias",
    "dln_switching",
    "dln_flows_vs_gd",
    "relu_kinks",
    "convergence_bounds",
    "sam_quadratic_stability",
    "sharpness_manifold_drift",
    "error_vs_rho_and_m",
    "hessian_spectra",
    "label_noise",
    "m_sharpness_correlation",
    "pac_bayes_bounds",
    "dziugaite_roy_bound",
    "resnet_switching",
    "resnet_population_cpu",
)
