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
# # Paper session
#
# One paper session through the one loop (fetch, features, route, predict, size, risk, order, fill, commit), replayed on the chosen source, read back from its SQLite ledger. Fills are at the next bar's open with slippage and commission; orders are sized from prices known at decision time.

# %% tags=["parameters"]
symbols = "SPY,QQQ"
source = "sample"
start = None
end = None
flag = "0"
dry_run = False
model = None

# %%
# %matplotlib inline
import research_lib as rl

rl.configure_logging(level="WARNING")
result = rl.paper_session(symbols, source=source, start=start, end=end, flag=flag,
                          dry_run=dry_run, model=model)
rep = rl.paper_session_report(result.ledger_path)
for note in rep.proxy_notes():
    print("PROXY:", note)
print("FLAG_ASSET_SPECIFIC_MODELS =", flag, "| dry run:", dry_run, "| model:", model or "router")

# %%
print(rep.summary_text())

# %% [markdown]
# ## Equity against buy-and-hold, and drawdown

# %%
rep.equity_figure()

# %% [markdown]
# ## Metrics
#
# Named as in quantstats. Buy-and-hold is an equal-weight basket of the same symbols over the same bars, with no costs.

# %%
rep.metrics().round(4)

# %% [markdown]
# ## Exposure

# %%
rep.exposure_figure()

# %% [markdown]
# ## Trades

# %%
rep.trades_figure()

# %%
rep.trades()

# %% [markdown]
# ## Risk events
#
# Every denial, rejection and clip with its coded reason and numbers.

# %%
rep.denials_by_reason()

# %%
rep.risk_events()

# %% [markdown]
# ## Routing
#
# Which model decided for each symbol, with the shadow model and any fallback reason.

# %%
rep.routing()

# %% [markdown]
# ## Latency
#
# End-to-decision time per step: a new bar in, features, route, inference, risk, order decided.

# %%
rep.latency_figure()

# %%
print(rl.session_summary_text(result.summary))
