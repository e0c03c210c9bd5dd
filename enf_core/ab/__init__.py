"""The closed-loop simulated A/B of ENF (pure parts): world, baseline ranker, arms, statistics."""
