"""Datasets in the ENF log schema: the schema, the simulator, real-data loaders.

See docs/data.md. Submodules are imported on demand; this package only names them.
"""

__all__: list[str] = []
