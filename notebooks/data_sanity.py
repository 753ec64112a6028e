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

# %% [markdown]
# # Data sanity
#
# Every check of `research_lib.data.sanity` on the chosen symbols: schema, order, NaN/inf, non-positive prices, OHLC consistency, negative volume, gaps against the exchange calendar (flagged, never filled), future timestamps, stale bars and price jumps. Proxies are named wherever they appear.

# %% tags=["parameters"]
symbols = "SPY,QQQ,BTC-USD,ETH-USD"
source = "sample"
start = None
end = None

# %%
# %matplotlib inline
import research_lib as rl

rl.configure_logging(level="WARNING")
rep = rl.data_sanity_report(symbols, source=source, start=start, end=end)
for note in rep.proxy_notes():
    print("PROXY:", note)

# %% [markdown]
# ## Summary per symbol

# %%
rep.summary

# %%
print(rep.counts_text())

# %% [markdown]
# ## Findings
#
# Severity, coded reason, symbol and where (timestamp, row as loaded).

# %%
rep.table

# %% [markdown]
# ## Prices

# %%
rep.price_figure()

# %% [markdown]
# ## Returns distribution
#
# Heavy tails show against the normal curve of the same standard deviation.

# %%
rep.returns_figure()

# %% [markdown]
# ## Gaps and other findings over time

# %%
rep.gaps_figure()
