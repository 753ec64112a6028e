"""Issue 12 measurement spike: two prototypes of the replay's account loop (numba, numpy),
checked against research_lib's real replay and timed beside backtesting.py and vectorbt.
Nothing here is used by research_lib; see README.md beside this file."""
