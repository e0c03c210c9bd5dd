"""The ``enf`` command line: one module per command group, loaded on demand.

Loading lazily keeps ``enf worker`` free of the training stack (torch,
transformers) and keeps start-up fast.
"""

from __future__ import annotations

import importlib
import logging
import os

import click

__all__ = ["main"]

# command name -> module under streams.cli that defines ``cli`` (a click command)
COMMANDS: dict[str, tuple[str, str]] = {
    "worker": ("worker", "Run an ENF worker against Kafka and Redis given by URL."),
    "up": ("services", "Start the embedded broker and Redis (for local use)."),
    "down": ("services", "Stop the embedded services started by `enf up`."),
    "demo": ("demo", "Embedded services + a simulated feed + a worker, live, then a summary."),
    "data": ("data", "Simulate or load datasets in the ENF log schema."),
    "replay": ("replay", "Stream a dataset into the Kafka topics in time order."),
    "agents": ("agents", "Run the Video and Profile agents on one input."),
    "train": ("train", "Train and export the agents' students."),
    "distill": ("distill", "Distil a teacher (the S-GRPO policy) into a new scorer version."),
    "eval": ("eval", "Evaluate models on the test splits."),
    "logs": ("logs", "Dump the logged topics into the ENF log schema (retraining)."),
    "model": ("model", "List a model directory's versions; roll back to one."),
    "portraits": ("portraits", "Rebuild portraits and video analyses from the retained topics."),
    "ab": ("ab", "Closed-loop simulated A/B of ENF through the real worker (report + plots)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"streams.cli.{entry[0]}")
        command = getattr(module, cmd_name.replace("-", "_"), None) or module.cli
        return command  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.option("--log-level", default=lambda: os.environ.get("ENF_LOG_LEVEL", "WARNING"),
              show_default="WARNING (ENF_LOG_LEVEL)")
def main(log_level: str) -> None:
    """ENF Stream: catch and explain negative feedback in video feeds, in real time."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
