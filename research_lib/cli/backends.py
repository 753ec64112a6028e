"""The fan-out options ``sweep`` and ``train`` share (research_lib.parallel)."""

from __future__ import annotations

import argparse


def add_backend_args(p: argparse.ArgumentParser, serial: str) -> None:
    """``--backend local|dask|serial`` and ``--scheduler ADDR``; ``serial`` says what the
    serial backend does for this command."""
    p.add_argument("--backend", choices=["local", "dask", "serial"], default="local",
                   help="local: joblib's loky processes (default); dask: joblib's Dask "
                        f"backend (--scheduler, else a LocalCluster of --jobs workers); {serial}")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="a Dask scheduler, e.g. tcp://HOST:8786 (--backend dask)")
