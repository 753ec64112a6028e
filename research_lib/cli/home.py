"""``research-lib init DIR``: lay out a project home."""

from __future__ import annotations

import argparse


def cli_init(args: argparse.Namespace) -> int:
    from ..project import init_home

    res = init_home(args.dir, force=args.force)
    print(f"project home {res.home}")
    if res.made:
        print(f"  made      {', '.join(res.made)}")
    print(f"  copied    {len(res.copied)} file(s) from the packaged defaults")
    for rel in res.kept:
        print(f"  kept      {rel} (yours differs from the shipped one; left as it was)")
    print(f"next: cd {res.home} && research-lib paper --symbols SPY,QQQ   "
          f"(or: export RESEARCH_LIB_HOME={res.home})")
    return 0
