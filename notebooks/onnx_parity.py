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
model = "models/crypto_v1.onnx"  # an ONNX file with its card beside it

# %% [markdown]
# # ONNX parity: scikit-learn against onnxruntime
#
# The pipeline is rebuilt from the card (retrained on the recorded data; no pickle) and both are run on rows the fit never saw. Passes iff max |diff| <= 1e-5 and every decision agrees.

# %%
# %matplotlib inline
import research_lib as rl

plots = rl.model_plots

# %%
check = rl.parity_check(rl.resolve_path(model))
print(check.report.rows_from)

# %%
print(f"passed: {check.report.passed}; identical decisions: {check.report.share_identical_decisions:.2%}")

# %%
plots.parity_table(check)

# %%
plots.parity_figure(check)
