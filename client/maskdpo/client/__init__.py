"""maskdpo.client: the Python SDK (sync and async), its typed errors and the ``maskdpo`` command line.

    from maskdpo.client import Client, Knowledge
    with Client("127.0.0.1:50051") as client:
        print(client.score("Paris is the capital of France.", knowledge=Knowledge(passages=["..."])))

Failed calls raise subclasses of :class:`maskdpo.client.errors.MaskdpoError`.
"""

from maskdpo.client._async_client import AsyncClient
from maskdpo.client._client import Client, GenerationStream
from maskdpo.client._generation import Judging, Sampling, deploy_metadata, deploy_result
from maskdpo.client._requests import Item, Knowledge, ScoreOptions
from maskdpo.client._rounds import planned_round, round_metadata, round_of, toy_round_config
from maskdpo.client.errors import MaskdpoError

__all__ = ["AsyncClient", "Client", "GenerationStream", "Item", "Judging", "Knowledge", "MaskdpoError",
           "Sampling", "ScoreOptions", "deploy_metadata", "deploy_result", "planned_round", "round_metadata",
           "round_of", "toy_round_config"]
