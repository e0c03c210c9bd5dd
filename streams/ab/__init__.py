"""enf ab: the closed-loop simulated A/B through a real worker, broker and Redis."""
