"""pgjax: high-throughput policy-gradient reinforcement learning in JAX."""

__version__ = "0.1.0"
