"""pcprep."""
