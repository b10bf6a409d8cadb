"""alignguard: prove a PyTorch model implements its design before training it."""

__version__ = "0.1.0"
