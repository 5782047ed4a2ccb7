"""threedsr-cli."""
