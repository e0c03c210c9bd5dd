"""Batch handlers: decode, read Redis once, compute, write Redis once, emit.

They know nothing of Faust: the app hands them plain ``Message`` batches and a
``Sink`` to produce to, so tests drive them with a real Redis and no broker.
"""
