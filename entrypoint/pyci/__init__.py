"""pyci-action: prove on every pull request that a multi-service Kubernetes app starts."""

__version__ = "0.1.0"
