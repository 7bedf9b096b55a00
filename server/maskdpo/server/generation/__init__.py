"""Generation on a vLLM engine: sampling, streaming, versioned weights and verified hot-swap.

The gRPC servicers sit above this package; they map its typed errors (:mod:`.errors`) onto the service's
status codes. :class:`~maskdpo.server.generation.engine.GenerationEngine` runs in-process (used by the llm
judge as well); :class:`~maskdpo.server.workers.generator_actor.GeneratorActor` hosts one inside a Ray actor.
"""
