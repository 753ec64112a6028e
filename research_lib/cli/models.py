"""``research-lib train``, ``parity``, ``routing`` and ``convert-legacy``."""

from __future__ import annotations

import argparse
import json
import sys

from .backends import add_backend_args


def add_parallel_args(tr: argparse.ArgumentParser) -> None:
    """``train``'s fan-out options (issue 15)."""
    tr.add_argument("--jobs", type=int, default=1,
                    help="walk-forward folds (or, with --from-cards, models) fitted at once; "
                         "a random forest fits on this many threads (default 1)")
    add_backend_args(tr, "serial: in this process. Same model and card bytes on each")
    tr.add_argument("--from-cards", default=None, nargs="+", metavar="CARDS",
                    help="retrain the models of these cards (a models folder or NAME.json "
                         "files) from their specs, one model per worker, into --out-dir")
    tr.add_argument("--out-dir", default=None, metavar="DIR",
                    help="with --from-cards: where the retrained models and cards go")


def cli_train(args: argparse.Namespace) -> int:
    from ..models.result import summary_lines
    from ..models.train import train
    from .progress import progress_bar, wanted

    if getattr(args, "from_cards", None):
        return _train_from_cards(args)
    missing = [f for f, v in (("--asset-class", args.asset_class),
                              ("--symbols", args.symbols), ("--out", args.out)) if not v]
    if missing:
        print(f"research-lib train: {', '.join(missing)} required (or --from-cards CARDS "
              "--out-dir DIR to retrain existing models)", file=sys.stderr)
        return 2
    with progress_bar("train", "stage", wanted()) as progress:
        res = train(
            args.asset_class,
            args.symbols,
            start=args.start,
            end=args.end,
            source=args.source,
            interval=getattr(args, "interval", "1d"),
            out=args.out,
            pipeline=getattr(args, "pipeline", None),
            seed=getattr(args, "seed", None),
            progress=progress,
            jobs=getattr(args, "jobs", 1),
            backend=getattr(args, "backend", "local"),
            scheduler=getattr(args, "scheduler", None),
        )
    for line in summary_lines(res):
        print(line)
    print(f"wrote {res.model_path} and {res.card_path}")
    print(serve_hint(res.model_path, res.spec.name, res.sha256))
    if res.parity is not None and not res.parity.passed:
        print(
            f"research-lib train: parity FAILED for pipeline {res.spec.pipeline.name!r}: the ONNX "
            "model does not reproduce scikit-learn; do not serve it (use a parity-passing "
            "pipeline such as logistic or random_forest)"
        )
        return 1
    return 0


def _train_from_cards(args: argparse.Namespace) -> int:
    from ..models.fanout import train_from_cards
    from .progress import progress_bar, wanted

    if not args.out_dir:
        print("research-lib train: --from-cards needs --out-dir DIR (where the retrained "
              "models go)", file=sys.stderr)
        return 2
    given = [f for f, v in (("--asset-class", args.asset_class), ("--symbols", args.symbols),
                            ("--out", args.out), ("--pipeline", args.pipeline),
                            ("--seed", args.seed)) if v is not None]
    if given:
        print(f"research-lib train: {given[0]} cannot go with --from-cards (each card "
              "records its own spec)", file=sys.stderr)
        return 2
    with progress_bar("train", "model", wanted()) as progress:
        rows = train_from_cards(args.from_cards, args.out_dir, jobs=args.jobs,
                                backend=args.backend, scheduler=args.scheduler,
                                progress=progress)
    bad = 0
    for r in rows:
        auc = "n/a" if r["auc"] is None else f"{r['auc']:.4f}"
        print(f"{r['name']:<16} {r['asset_class']:<10} auc {auc}  parity "
              f"{'ok' if r['parity'] else 'FAILED'}  sha256 {r['sha256']}  {r['model']}")
        bad += not r["parity"]
    return 1 if bad else 0


def serve_hint(model_path, name: str, sha256: str) -> str:
    """What to do so the router serves a new model: pin it in the home's assets.yaml, after
    copying it into the home's models/ when it was written elsewhere, or after making a
    home when there is none (the packaged config and models are read only)."""
    from pathlib import Path

    from ..project import find_home

    pin = f"{name}: {{path: {name}.onnx, sha256: {sha256}}}"
    home = find_home()
    if home is None:
        return ("no project home here (the packaged config and models are read only): make "
                "one with `research-lib init DIR`, copy the .onnx and its .json card into "
                f"DIR/models/ and pin it in DIR/config/assets.yaml:  {pin}")
    models = home / "models"
    if Path(model_path).resolve().parent != models.resolve():
        return (f"to serve it, copy the .onnx and its .json card into {models}/ and pin it "
                f"in {home / 'config' / 'assets.yaml'}:  {pin}")
    return f"pin it in {home / 'config' / 'assets.yaml'}:  {pin}"


def cli_parity(args: argparse.Namespace) -> int:
    from ..models.parity import parity

    report = parity(args.model)
    if getattr(args, "json", False):
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print(report.summary())
        print(f"held-out rows: {report.rows_from}")
    return 0 if report.passed else 1


def cli_routing(args: argparse.Namespace) -> int:
    from ..models.router import routing_report

    report = routing_report(args.symbols, getattr(args, "interval", None))
    if getattr(args, "json", False):
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.text())
    return 0 if report.usable else 1


def cli_convert_legacy(args: argparse.Namespace) -> int:
    from ..models.legacy import PICKLE_WARNING, convert_legacy

    if not args.trust:
        print(
            f"research-lib convert-legacy: refusing to load {args.pickle}: {PICKLE_WARNING}.\n"
            "If you made this file or trust its author, run again with --trust.",
            file=sys.stderr,
        )
        return 2
    res = convert_legacy(args.pickle, args.out, trust=True)
    print(f"wrote {res['out']} and {res['card']}")
    print(res["parity"].summary())
    print(f"sha256 {res['sha256']}: pin it in config/assets.yaml before serving")
    return 0 if res["parity"].passed else 1
