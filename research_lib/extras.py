"""Optional dependencies: which extra brings which module, and the message naming it.

The serving path (``paper``, ``data``, ``features``, ``routing``, ``runs``, ``init``) needs
only the core dependencies. Training needs ``research_lib[train]`` (scikit-learn,
skl2onnx), reports need ``research_lib[report]`` (papermill, nbconvert, matplotlib,
ipykernel), JupyterLab comes with ``research_lib[jupyter]``. The CLI turns a
``ModuleNotFoundError`` for one of these into "install research_lib[EXTRA]".
"""

from __future__ import annotations

# top-level module -> (extra, what needs it)
EXTRA_OF: dict[str, tuple[str, str]] = {
    "sklearn": ("train", "training and parity (scikit-learn)"),
    "scipy": ("train", "training (scipy, with scikit-learn)"),
    "skl2onnx": ("train", "exporting models to ONNX (skl2onnx)"),
    "joblib": ("train", "loading a joblib file (joblib, with scikit-learn)"),
    "papermill": ("report", "running report notebooks (papermill)"),
    "nbconvert": ("report", "writing HTML reports (nbconvert)"),
    "nbformat": ("report", "reading notebooks (nbformat)"),
    "nbclient": ("report", "running report notebooks (nbclient)"),
    "ipykernel": ("report", "the notebook kernel (ipykernel)"),
    "matplotlib": ("report", "figures (matplotlib)"),
    "jupyterlab": ("jupyter", "JupyterLab"),
    "distributed": ("dask", "sweeps on Dask (research-lib sweep --backend dask)"),
    "dask": ("dask", "sweeps on Dask (research-lib sweep --backend dask)"),
    "jupytext": ("jupyter", "paired notebook scripts (jupytext)"),
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The message for a module an extra provides (None for any other missing module)."""
    name = (exc.name or "").split(".")[0]
    if name not in EXTRA_OF:
        return None
    extra, what = EXTRA_OF[name]
    return (f"{what} is not installed (no module {name!r}): it comes with the {extra!r} "
            f"extra; install it with: pip install 'research_lib[{extra}]'")
