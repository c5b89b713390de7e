"""Load tests and the fleet simulator (outside the unit suite; may import ``schemas/`` only)."""
