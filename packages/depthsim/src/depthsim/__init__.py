"""depthsim."""
