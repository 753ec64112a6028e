# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
asset_class = "crypto"  # universal | equities | crypto (options: the CLI, see Makefile)
symbols = "BTC-USD,ETH-USD,LTC-USD"
start = None  # None: from the first bar the source has
end = None
out = "reports/models/notebook_model.onnx"  # relative to the project root; never models/
pipeline = None  # None: the class default in config/models.yaml

# %% [markdown]
# # Train a model: walk-forward evaluation, baselines, card
#
# Same code as `research-lib train`; the model and its card are written to `out`.

# %%
# %matplotlib inline
import research_lib as rl

plots = rl.model_plots

# %%
res = rl.train_model(asset_class, symbols, start=start, end=end, out=rl.resolve_path(out),
                     pipeline=pipeline)
print(res.summary())

# %% [markdown]
# ## Out of sample: classification against naive baselines

# %%
plots.classification_table(res).round(3)

# %% [markdown]
# ## Out of sample: acting on the signal after costs, against the baselines

# %%
plots.metrics_table(res).round(3)

# %%
plots.equity_figure(res)

# %%
plots.folds_table(res)

# %% [markdown]
# ## Calibration

# %%
plots.calibration_figure(res)

# %% [markdown]
# ## Feature importance (permutation, out of sample)

# %%
plots.importance_figure(plots.feature_importance(res))

# %% [markdown]
# ## Parity with scikit-learn and the card

# %%
print(rl.model_card_text(res.card))
