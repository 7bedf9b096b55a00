"""Alignment rounds: SAMPLE -> JUDGE -> PAIR -> TRAIN -> EVALUATE -> PROMOTE as long-running operations.

``config`` validates a RoundConfig, ``datasets`` resolves prompt sets (and is where other packages register
theirs), ``phase_<name>`` does the work of one phase, ``promotion`` is the rule PROMOTE applies,
``controller`` runs rounds (in-process or as the detached Ray actor of ``controller_actor``), ``report``
writes the per-round Markdown and plot. The round store is :mod:`maskdpo.server.store.rounds`.
See docs/rounds.md.
"""
