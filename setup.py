"""Build hook (the rest of the metadata is in pyproject.toml).

The project home's defaults live once in git, at the top of the checkout: ``config/``,
``models/`` and ``notebooks/``. Building a wheel copies them, byte for byte, into the
package as ``research_lib/home/`` (so ``assets.yaml``'s sha256 pins hold), which is where an
installed package reads them when no project home is found (research_lib/project.py). An
editable install reads the checkout's folders directly and copies nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# the same patterns research_lib.project.SHIPPED_PATTERNS names (a test keeps them equal)
HOME_FILES = {"config": ("*.yaml",), "models": ("*.onnx", "*.json"),
              "notebooks": ("*.ipynb", "*.py", "jupytext.toml")}


class BuildPyWithHome(build_py):
    """``build_py``, then the top-level folders copied to ``research_lib/home/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "research_lib" / "home"
        for folder, patterns in HOME_FILES.items():
            files = sorted({p for pat in patterns for p in (ROOT / folder).glob(pat)
                            if p.is_file()})
            if not files:
                raise SystemExit(f"setup.py: no files in {ROOT / folder}; the wheel would "
                                 "ship no defaults")
            for src in files:
                target = dest / folder / src.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)


setup(cmdclass={"build_py": BuildPyWithHome})
