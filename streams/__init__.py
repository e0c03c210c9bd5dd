"""The streaming edge of ENF Stream: Faust app, topics, Redis store, services, CLI."""
