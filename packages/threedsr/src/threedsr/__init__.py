"""threedsr."""
