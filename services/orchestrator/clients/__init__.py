"""One gRPC client module per upstream service, speaking only the generated contracts."""
