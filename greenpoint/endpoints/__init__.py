"""Endpoint classes, one module per transport. Import them from ``greenpoint``."""
