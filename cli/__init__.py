"""The ``evidence-vault`` command line.

:func:`main` is the console entry point. ``agent`` and ``upload`` — the dialer side, which
runs for months next to a dialer — start from a slim command tree (:data:`cli.agent.standalone`)
that never imports the vault's database layer or its facade: about 25 MiB less resident
for the agent. Every other command starts from the full tree in :mod:`cli.main`. Keep this
module free of imports beyond the standard library: it runs before either tree loads.
"""

from __future__ import annotations

import sys

#: the commands the slim tree answers
AGENT_COMMANDS = frozenset({"agent", "upload"})


def main() -> None:
    if _command(sys.argv[1:]) in AGENT_COMMANDS:
        from cli.agent import standalone

        standalone(prog_name="evidence-vault")
    else:
        from cli.main import main as full

        full()


def _command(argv: list[str]) -> str | None:
    """The command name after the root options (``--vault DIR``, ``--json``); None when
    anything else comes first (``--help``, ``--version``): the full tree answers those."""
    args = iter(argv)
    for arg in args:
        if arg == "--vault":
            next(args, None)
        elif arg == "--json" or arg.startswith("--vault="):
            continue
        else:
            return None if arg.startswith("-") else arg
    return None
