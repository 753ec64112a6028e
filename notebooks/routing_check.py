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
symbols = None  # None: the shipped sample's symbols, their aliases and an example option

# %% [markdown]
# # Routing check: symbol -> asset class -> model
#
# `FLAG_ASSET_SPECIFIC_MODELS` is read at every decision: `0` universal for all, `1` the class model (falling back to universal, saying why), `shadow` universal decides while the class model predicts beside it.

# %%
# %matplotlib inline
import research_lib as rl

plots = rl.model_plots
rl.configure_logging(level="ERROR")  # model problems are shown in the table below, not as log lines

# %%
router = rl.Router()
syms = rl.symbols_or_default(symbols)
print(rl.routing_header(rl.asset_specific_mode()))
plots.models_frame(router)

# %% [markdown]
# ## Routing now (the flag as this kernel sees it)

# %%
plots.routing_frame(router, syms)

# %% [markdown]
# ## The deciding model under each flag value

# %%
plots.routing_modes(router, syms)

# %% [markdown]
# ## Universal against class model on each symbol's last bar

# %%
have, X = plots.latest_features(syms)
pred = plots.predictions_by_mode(router, have, X)
pred.round(4)

# %%
plots.predictions_figure(pred)
