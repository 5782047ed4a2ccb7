"""admetrics."""
