"""maskdpo.client: the Python SDK (sync and async), its typed errors and the ``maskdpo`` command line."""
