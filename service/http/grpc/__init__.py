"""The Open Inference Protocol (v2) over gRPC: the servicer, its messages, its server."""
