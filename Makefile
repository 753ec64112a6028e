# Two commands do all the set-up on a fresh machine (network: package registries only):
#   make run    the main job: a paper session on the shipped offline sample + HTML report
#   make test   lint, unit, acceptance and notebook (nbval) tests, offline
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.research_lib-installed
PYTEST_ARGS ?=

.PHONY: setup run test lint unit notebooks slow bench clean nbsync wheel ready

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/research-lib report paper_session -p symbols SPY,QQQ \
	  --out reports/paper_session_SPY_QQQ.html
	FLAG_ASSET_SPECIFIC_MODELS=1 $(BIN)/research-lib report paper_session \
	  -p symbols BTC-USD,ETH-USD -p flag 1 --out reports/paper_session_BTC_ETH.html
	$(BIN)/research-lib report data_sanity -p symbols SPY,QQQ,BTC-USD,ETH-USD

# the readiness gate: every claim checked now, with its evidence (exit 0 only when ready)
ready: $(STAMP)
	$(BIN)/research-lib ready --html reports/ready.html

lint: $(STAMP)
	$(BIN)/ruff check research_lib tests tools benchmarks

test: $(STAMP)
	$(BIN)/ruff check research_lib tests tools benchmarks
	$(BIN)/python -m pytest -m "not slow" -p no:cacheprovider $(PYTEST_ARGS) tests \
	  --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

# fault injection (100 SIGKILLs) and long property runs; -s shows the figures they print
slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -s -p no:cacheprovider tests

clean:
	rm -rf $(VENV) reports/*.html .pytest_cache build dist

# notebooks: strip outputs and write each paired percent script (notebooks/NAME.py) from
# the .ipynb; tests/test_notebooks_paired.py fails until this is done
nbsync: $(STAMP)
	$(BIN)/python tools/sync_notebooks.py

# the wheel (config/, models/, notebooks/ shipped inside as research_lib/home/) in dist/
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .

# Rebuild the committed models and their cards from the shipped sample (seconds each).
# Then pin each printed sha256 in config/assets.yaml; tests/test_models_reproducible.py
# retrains each model and checks it predicts the same as the committed file.
# Out of sample by default: each model is fitted on the sample up to a cut and the bars
# after it are held out (the card's training_window / out_of_sample_window): equities,
# the index options and the universal model to 2015-12-31 (held out: 2016-2018, and
# BTC/ETH/LTC 2016-2020 for universal, which never saw ETH or LTC), crypto to 2018-12-31
# (held out: 2019-01-01 .. 2020-01-17). `paper` without --start replays the held-out bars.
.PHONY: models
models: $(STAMP)
	$(BIN)/research-lib train --asset-class universal --symbols '^GSPC,^IXIC,GOOG,BTC-USD' --start 1999-01-01 --end 2015-12-31 --out models/universal_v1.onnx
	$(BIN)/research-lib train --asset-class equities --symbols '^GSPC,^IXIC,GOOG' --start 1999-01-01 --end 2015-12-31 --out models/equities_v1.onnx
	$(BIN)/research-lib train --asset-class crypto --symbols BTC-USD,ETH-USD,LTC-USD --start 2014-01-01 --end 2018-12-31 --out models/crypto_v1.onnx
	$(BIN)/research-lib train --asset-class options --source synthetic-options --symbols SPX --start 2014-01-01 --end 2015-12-31 --out models/options_v1.onnx
	# 1m models (a model per interval, config/assets.yaml) from the shipped intraday sample:
	# a few days of bars, see their cards (SMALL DATA)
	$(BIN)/research-lib train --asset-class universal --symbols '^GSPC,XRP-ETH' --interval 1m --out models/universal_1m_v1.onnx
	$(BIN)/research-lib train --asset-class equities --symbols '^GSPC' --interval 1m --out models/equities_1m_v1.onnx
	$(BIN)/research-lib train --asset-class crypto --symbols XRP-ETH --interval 1m --out models/crypto_1m_v1.onnx

# Benchmarks (issue 6): figures printed as medians with min and max over repeated runs,
# never timed tests. Installs the bench extra (backtesting.py, backtrader) for the
# side-by-side comparison. BENCH_ARGS=--quick for a shorter run; see python -m benchmarks -h.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
