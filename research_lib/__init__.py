"""research_lib: data, features, models, routing, risk and a paper broker for notebooks.

The public face is small; everything is imported on first use so that a paper session
never pays for scikit-learn or matplotlib::

    import research_lib as rl
    frames = rl.load(["SPY", "BTC-USD"])            # offline sample by default
    feats = rl.build_features(frames["SPY"])
    rep = rl.data_sanity_report("SPY,QQQ")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, tuple[str, str | None]] = {
    "load": ("research_lib.data", "load"),
    "get_source": ("research_lib.data", "get_source"),
    "check_symbols": ("research_lib.data.sanity_report", "check_symbols"),
    "check_frame": ("research_lib.data.sanity", "check_frame"),
    "build_features": ("research_lib.features", "build"),
    "FeatureState": ("research_lib.features", "FeatureState"),
    "FEATURES": ("research_lib.features", "FEATURES"),
    "data_sanity_report": ("research_lib.report", "data_sanity_report"),
    "configure_logging": ("research_lib.telemetry", "configure"),
    "run_report": ("research_lib.notebooks", "run_report"),
    "paper_session": ("research_lib.report", "paper_session"),
    "paper_session_report": ("research_lib.report", "paper_session_report"),
    "paper_session_tearsheet": ("research_lib.report", "paper_session_tearsheet"),
    "tearsheet": ("research_lib.tearsheet", "tearsheet"),
    "run_session": ("research_lib.paper.session", "run_session"),
    "read_run": ("research_lib.ledger_read", "read_run"),
    "session_summary_text": ("research_lib.paper.summary", "format_summary"),
    "FramesSource": ("research_lib.data.frames", "FramesSource"),
    "RunSpec": ("research_lib.paper.spec", "RunSpec"),
    "Wiring": ("research_lib.paper.spec", "Wiring"),
    "SignalModel": ("research_lib.signal_model", "SignalModel"),
    "ModelBase": ("research_lib.signal_model", "ModelBase"),
    "run_ready": ("research_lib.ready", "run_ready"),
    # what the shipped notebooks use (each imports from here only)
    "Router": ("research_lib.models.router", "Router"),
    "routing_header": ("research_lib.models.router", "header"),
    "symbols_or_default": ("research_lib.models.router", "symbols_or_default"),
    "asset_specific_mode": ("research_lib.flags", "asset_specific_mode"),
    "train_model": ("research_lib.models", "train_model"),
    "model_card_text": ("research_lib.models.card", "dumps"),
    "parity_check": ("research_lib.models.parity", "parity_check"),
    "model_plots": ("research_lib.models.plots", None),
    "resolve_path": ("research_lib.project", "resolve_path"),
    # issue 15: parameter sweeps over replays (joblib: loky or Dask)
    "sweep": ("research_lib.sweeps.run", "sweep"),
    "notebook_sweep": ("research_lib.sweeps.notebook", "notebook_sweep"),
    "train_from_cards": ("research_lib.models.fanout", "train_from_cards"),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod, attr = _EXPORTS[name]
        module = importlib.import_module(mod)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'research_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
