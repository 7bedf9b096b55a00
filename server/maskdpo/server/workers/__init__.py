"""Ray actors hosting the heavy work: judges, generators, the trainer and the round controller."""
