"""The README's "Safety guarantees" section cites, for each guarantee, a test that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_safety_guarantees_section_cites_only_tests_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Safety guarantees", 1)[1].split("\n## ", 1)[0]
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section)
    assert len(cited) > 40
    missing = [f"{f}::{name}" for f, name in cited
               if not (ROOT / f).is_file()
               or not re.search(rf"^def {name}\(", (ROOT / f).read_text(encoding="utf-8"), re.M)]
    assert missing == []
    for line in section.splitlines():  # every guarantee names its proof (or says it is pending)
        if line.startswith("- ") and not line.startswith("- TODO (pending"):
            assert "`tests/" in line, line
