"""The edge of the service: error mapping, auth, interceptors, paging and resource names (gRPC only)."""
