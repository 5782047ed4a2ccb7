"""vqcore."""
