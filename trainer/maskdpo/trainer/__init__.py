"""maskdpo.trainer: the Mask-DPO method as a library.

It owns the method's vocabulary (sentence labels, sentence spans, mask rules, preference pairs) as plain
Python types, turns sentence labels into token masks, and trains with TRL. It imports nothing else of
maskdpo, so it runs without the service: ``maskdpo train --data ... --model ... --out ...``.
"""
