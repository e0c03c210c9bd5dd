"""Real-data loaders: each turns a public dataset into the ENF log schema."""

__all__: list[str] = []
