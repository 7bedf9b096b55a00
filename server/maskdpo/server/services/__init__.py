"""gRPC servicers: thin adapters from protobuf requests to the judge, generators and round controller."""
