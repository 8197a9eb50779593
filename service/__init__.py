"""aeserve's inference service: serves autoencoders from a model repository with onnxruntime.

Importing this package does no work and never imports torch.
"""

__version__ = "0.1.0"
