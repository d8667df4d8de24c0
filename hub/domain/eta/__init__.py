"""Expected wait (DESIGN §4): a forward simulation of the branch from its current state.

`observed` folds trace events into the present, `history` learns from them, `model` turns both into
a simulation `plans`/`forward` can play, `calibration` keeps the range honest, `estimator` ties
them together for one branch and `replay` runs it over a trace on the prediction schedule (docs/trace.md#recorded-predictions).
"""
