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
# # Paper session tearsheet
#
# A paper run read back from its SQLite ledger: a new replay of `symbols` (one loop: fetch, features, route, predict, size, risk, order, fill, commit; fills at the next bar's open with slippage and commission), or any existing run given as `run` (`research-lib report paper_session --run RUN_ID`: replay, fast replay, resumed or live; nothing is replayed).

# %% tags=["parameters"]
symbols = "SPY,QQQ"
source = "sample"
start = None
end = None
flag = "0"
dry_run = False
model = None
run = None

# %%
# %matplotlib inline
import research_lib as rl

rl.configure_logging(level="WARNING")
ts = rl.paper_session_tearsheet(run=run, symbols=symbols, source=source, start=start,
                                end=end, flag=flag, dry_run=dry_run, model=model)
ts.header()

# %%
print(ts.summary_text())

# %% [markdown]
# ## Key numbers

# %%
ts.metrics_table()

# %% [markdown]
# ## Equity against the benchmarks
#
# Zoom with the mouse (drag a range; double-click to reset). Log scale: equal distances are equal percentage moves.

# %%
ts.equity_chart()

# %% [markdown]
# ## Returns by month and year

# %%
ts.monthly_heatmap()

# %%
ts.yearly_table()

# %%
ts.yearly_figure()

# %% [markdown]
# ## Drawdowns

# %%
ts.drawdown_figure()

# %%
ts.drawdown_table()

# %% [markdown]
# ## Rolling risk

# %%
ts.rolling_figure()

# %% [markdown]
# ## Return distribution

# %%
ts.distribution_figure()

# %% [markdown]
# ## Round-trip trades

# %%
ts.trades_table()

# %% [markdown]
# ## Attribution per symbol

# %%
ts.attribution_table()

# %%
ts.attribution_figure()

# %%
ts.symbol_pnl_chart()

# %%
ts.price_fills_chart()

# %% [markdown]
# ## Exposure, turnover and costs

# %%
ts.exposure_chart()

# %%
ts.turnover_figure()

# %% [markdown]
# ## Operations
#
# How the run was operated, apart from the research story: which model decided for each symbol, every risk event with its coded reason, state changes, stale marks, and the time from a new bar to a decided order.

# %%
ts.routing_table()

# %%
ts.risk_events_table()

# %%
ts.state_changes_table()

# %%
ts.stale_marks_table()

# %%
ts.latency_figure()
