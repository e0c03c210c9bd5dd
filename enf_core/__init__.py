"""Pure domain logic of ENF Stream: events, taxonomy, portraits, features, metrics.

Nothing here imports Kafka, Redis or torch at module level, so every function is
a function of its inputs and can be tested without services.
"""

__all__: list[str] = []
