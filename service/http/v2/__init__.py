"""The Open Inference Protocol (v2) over REST: routes, wire format, OpenAPI."""
