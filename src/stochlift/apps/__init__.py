"""Applications on top of the core: the command line, the demos, the HTML report, plots, the speed bench,
the paper's experiments and best-of-seeds selection. The core (stochlift.data, metrics, models, problems,
lifting, baselines, evaluation) never imports from here."""
