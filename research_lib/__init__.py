"""research_lib: data, features, models, routing, risk and a paper broker for notebooks."""

__version__ = "0.1.0"
