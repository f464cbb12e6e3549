"""`mrv inspect FILE [--pubkey K]`: decode an envelope to JSON and say whether it verifies.

The only I/O in `protocol/`: a command-line shell that reads one file around the pure decoder.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from protocol.envelope import ParsedEnvelope, envelope_hash, parse_envelope, verify_parsed
from protocol.errors import EnvelopeError
from protocol.keys import PublicKeyRecord
from protocol.metrics import METRICS, Metric, Quality


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def _flags(quality: int) -> list[str]:
    return [flag.name or str(flag.value) for flag in Quality if flag and quality & flag]


def describe_envelope(parsed: ParsedEnvelope) -> dict[str, Any]:
    p = parsed.payload
    return {
        "size_bytes": len(parsed.raw),
        "sha256": envelope_hash(parsed.raw).hex(),
        "kid": parsed.kid.hex(),
        "version": p.version,
        "device_id": p.device_id,
        "seq": p.seq,
        "prev": p.prev.hex(),
        "device_time": _iso(p.device_time_ms),
        "readings": [
            {"metric": METRICS[Metric(r.metric)].name, "unit": METRICS[Metric(r.metric)].unit,
             "time": _iso(r.ts_ms), "value": r.value, "quality": _flags(r.quality)}
            for r in p.readings
        ],
    }


def load_public_key(text: str) -> bytes:
    """A PublicKeyRecord JSON file's content, or a base64 raw 32-byte key."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return PublicKeyRecord.from_json(stripped).public_key
    return base64.b64decode(stripped, validate=True)


def main(argv: list[str], prog: str = "mrv inspect") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Decode a signed envelope (raw COSE_Sign1 file) to JSON.",
        epilog="example: mrv inspect envelopes/dev-1-0.cose --pubkey envelopes/dev-1.pub.json")
    parser.add_argument("file", type=Path, help="raw envelope bytes")
    parser.add_argument("--pubkey", type=Path, help="device public key: PublicKeyRecord JSON or base64")
    args = parser.parse_args(argv)
    try:
        raw = args.file.read_bytes()
        parsed = parse_envelope(raw)
    except OSError as e:
        print(f"{prog}: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    except EnvelopeError as e:
        print(f"{prog}: {args.file} is not a valid envelope: {e}", file=sys.stderr)
        return 1
    report = describe_envelope(parsed)
    status = 0
    if args.pubkey is None:
        report["signature"] = "not checked (pass --pubkey)"
    else:
        try:
            verify_parsed(parsed, load_public_key(args.pubkey.read_text()))
            report["signature"] = "valid"
        except (OSError, ValueError) as e:
            print(f"{prog}: cannot load the public key {args.pubkey}: {e}", file=sys.stderr)
            return 2
        except EnvelopeError as e:
            report["signature"] = f"INVALID: {e}"
            status = 1
    print(json.dumps(report, indent=2))
    return status
