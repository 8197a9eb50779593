"""aeserve's offline training pipeline (PyTorch): datasets, architectures, training, export."""
