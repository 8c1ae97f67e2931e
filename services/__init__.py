"""The three RailDebug services; each is a plain Python core with a thin gRPC layer."""
