"""Compile CheckpointAnchor.sol with solcjs into CheckpointAnchor.json (ABI + deployable bytecode).

    python contracts/compile.py           write the artifact
    python contracts/compile.py --check   exit 1 if the checked-in artifact differs from a fresh build

Run from anywhere; solcjs is installed under the project's npm prefix on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from managed_services.anvil import node_tool

SOLC_PACKAGE = "solc@0.8.37"
HERE = Path(__file__).resolve().parent
SOURCE = "contracts/CheckpointAnchor.sol"  # relative to the repository: the path is in the metadata hash
ARTIFACT = HERE.parent / "anchoring" / "ledger" / "CheckpointAnchor.json"  # package data: deploy works when installed


def build() -> str:
    solcjs = node_tool(SOLC_PACKAGE, "solcjs")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([str(solcjs), "--bin", "--abi", "--optimize", "-o", out, SOURCE],
                       cwd=HERE.parent, check=True)
        stem = Path(out) / "contracts_CheckpointAnchor_sol_CheckpointAnchor"
        abi = json.loads(stem.with_suffix(".abi").read_text())
        bytecode = "0x" + stem.with_suffix(".bin").read_text().strip()
    artifact = {"contractName": "CheckpointAnchor", "compiler": f"solcjs {SOLC_PACKAGE} --optimize",
                "source": SOURCE, "abi": abi, "bytecode": bytecode}
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    fresh = build()
    if "--check" in argv:
        if ARTIFACT.read_text() != fresh:
            print(f"{ARTIFACT} is stale: run python contracts/compile.py", file=sys.stderr)
            return 1
        return 0
    ARTIFACT.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
