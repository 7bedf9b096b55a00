"""Alignment rounds: SAMPLE -> JUDGE -> PAIR -> TRAIN -> EVALUATE -> PROMOTE as long-running operations.

``config`` validates a RoundConfig, ``datasets`` resolves prompt sets, ``store`` persists rounds, phases
and events (SQLite, WAL), ``phases`` does the work of each phase, ``promotion`` decides, ``controller``
runs rounds (in-process or as a detached Ray actor), ``report`` writes the per-round Markdown and plot.
See docs/rounds.md.
"""
