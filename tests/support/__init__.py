"""Test helpers shared across test modules (a real Prometheus harness, scrape targets)."""
