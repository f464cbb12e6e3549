"""`mrv proof DEVICE SEQ`: the C2SP tlog-proof that an envelope is in the latest checkpoint."""

from __future__ import annotations

import argparse
import sys

import psycopg

from anchoring.errors import AnchoringError, NotLogged
from anchoring.store import inclusion_proof, latest_checkpoint
from anchoring.tlog_proof import TlogProof


def envelope_proof(conn: psycopg.Connection, device_id: str, seq: int) -> TlogProof:
    """The tlog-proof of envelope (device_id, seq) against the latest checkpoint."""
    row = conn.execute("SELECT l.leaf_index FROM envelopes e JOIN log_leaves l ON l.envelope_id = e.id "
                       "WHERE e.device_id = %s AND e.seq = %s", [device_id, seq]).fetchone()
    if row is None:
        raise NotLogged(f"envelope {device_id}/{seq}")
    index = int(row[0])
    checkpoint = latest_checkpoint(conn)
    if checkpoint is None or checkpoint.size <= index:
        raise NotLogged(f"envelope {device_id}/{seq} is leaf {index}, not in a checkpoint yet")
    return TlogProof(index, tuple(inclusion_proof(conn, index, checkpoint.size)), checkpoint.note)


def main(argv: list[str], prog: str = "mrv proof") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     epilog=f"example: {prog} meter-17 4242 > meter-17-4242.proof")
    parser.add_argument("device_id")
    parser.add_argument("seq", type=int)
    parser.add_argument("--conninfo", default="",
                        help="libpq conninfo (default: the PG* environment variables)")
    args = parser.parse_args(argv)
    try:
        with psycopg.connect(args.conninfo, autocommit=True) as conn:
            proof = envelope_proof(conn, args.device_id, args.seq)
    except psycopg.Error as e:
        print(f"{prog}: database: {str(e).strip()}", file=sys.stderr)
        return 1
    except AnchoringError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(proof.encode())
    return 0
