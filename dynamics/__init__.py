"""dynamics package."""
