"""The `mrv` command. Subcommands import their package only when used, so a gateway installed with
just the `edge` extra runs `mrv edge ...` and gets a clear message for anything that needs more."""

from __future__ import annotations

import importlib
import sys

# command -> (module with `main(argv, prog) -> int`, extra it needs, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("demo.up", "server", "run the whole pipeline as a demo on this machine"),
    "edge": ("edge_agent.cli", "edge", "gateway agent: keygen, run, status"),
    "sim": ("simulators.cli", "edge", "simulated plants, Modbus servers, fleets, sample envelopes"),
    "inspect": ("protocol.inspect", "", "decode an envelope file to JSON and say whether it verifies"),
    "db": ("ingest.cli_db", "server", "database schema: migrate, status"),
    "devices": ("ingest.cli_devices", "server", "device registry: enroll, rotate, revoke, list"),
    "ingest": ("ingest.cli", "server", "ingest worker: run"),
    "anchor": ("anchoring.cli", "server", "sequencer, checkpoints and ledger anchoring: run, status"),
    "proof": ("anchoring.cli_proof", "server", "inclusion proof of one envelope (C2SP tlog-proof)"),
    "verify": ("anchoring.cli_verify", "", "verify an evidence bundle offline"),
    "report": ("mrv_engine.cli", "server", "monitoring report of a project and period"),
    "console": ("mrv_engine.console.cli", "server", "operator API and dashboard"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mrv COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`mrv COMMAND --help` for the command's options; example: mrv edge keygen --help"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mrv: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, extra, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            print(f"mrv {name}: not available in this build ({module_name} is missing)", file=sys.stderr)
        else:
            print(f"mrv {name}: needs the '{extra}' extra (missing module {e.name}); "
                  f"install it with: pip install 'mrv-ledger[{extra}]'", file=sys.stderr)
        return 2
    result: int = module.main(rest, prog=f"mrv {name}")
    return result


if __name__ == "__main__":
    sys.exit(main())
