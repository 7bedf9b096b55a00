"""maskdpo.toyworld: a synthetic world of fictional people, its corpus, its small model and the experiment.

It gives the project ground truth: an exact judge and a model that really hallucinates, small enough to
run end to end on a CPU.
"""
