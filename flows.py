"""Prefect flows and deployments for FineForge."""
