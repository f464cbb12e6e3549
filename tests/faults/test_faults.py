"""The fault suite's short forms (TARGETS.md R1–R10), one test per fault; each prints its record and
asserts 0 lost, 0 duplicated, 0 wrongly accepted and every further check. `bench/faults.py` runs the
same scenarios, and their long forms with --full.

R6 and R7 keep their short forms where they were (tests/ingest/test_fuzz.py, test_attacks.py), as does
the `mrv verify` form of R8 (tests/anchoring/test_evidence.py) and the sequencer race of R10
(tests/anchoring/test_sequencer_process.py). In R2-ingest and the two R2 variants with the ingest
worker away Mosquitto 2.0 loses messages it acknowledged; the agent keeps every envelope until ingest's
receipt and sends again what a later receipt proves lost (see the README)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from managed_services.mosquitto import Mosquitto
from managed_services.postgres import Postgres
from tests.faults import edge_faults, ingest_faults
from tests.faults.record import FaultResult

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _passes(result: FaultResult) -> None:
    print(result.line())
    print(result.details)
    assert (result.lost, result.duplicated, result.wrongly_accepted) == (0, 0, 0), result.line()
    assert result.passed, result.line()


def test_r1_kill_9_of_an_ingest_worker_ten_times(pg_conninfo: str, mosquitto: Mosquitto, project_id: str,
                                                  tmp_path: Path) -> None:
    _passes(ingest_faults.r1_worker_kills(pg_conninfo, mosquitto.port, tmp_path, project_id))


def test_r2_broker_restart_mid_run(mosquitto: Mosquitto, tmp_path: Path, project_id: str) -> None:
    _passes(edge_faults.r2_broker_restart(mosquitto, tmp_path, project_id))


def test_r2_broker_restart_through_ingest(mosquitto: Mosquitto, pg_conninfo: str, tmp_path: Path,
                                          project_id: str) -> None:
    _passes(edge_faults.r2_restart_through_ingest(mosquitto, pg_conninfo, tmp_path, project_id))


def test_r2_broker_crash_with_acknowledged_messages_queued(mosquitto: Mosquitto, pg_conninfo: str,
                                                           tmp_path: Path, project_id: str) -> None:
    _passes(edge_faults.r2_offline_subscriber(mosquitto, pg_conninfo, tmp_path, project_id, crash=True,
                                              envelopes=200))


def test_r2_broker_restart_while_the_ingest_worker_is_away(mosquitto: Mosquitto, pg_conninfo: str,
                                                           tmp_path: Path, project_id: str) -> None:
    _passes(edge_faults.r2_offline_subscriber(mosquitto, pg_conninfo, tmp_path, project_id, crash=False,
                                              envelopes=200))


def test_r3_postgres_restart_mid_load(pg_conninfo: str, postgres_session: Postgres, mosquitto: Mosquitto,
                                      project_id: str, tmp_path: Path) -> None:
    _passes(ingest_faults.r3_postgres_restart(pg_conninfo, postgres_session, mosquitto.port, tmp_path,
                                              project_id))


def test_r5_kill_9_of_the_agent_twenty_times(mosquitto: Mosquitto, tmp_path: Path, project_id: str) -> None:
    _passes(edge_faults.r5_agent_kills(mosquitto, tmp_path, project_id))


def test_r10_workers_and_sequencers_killed_at_random(pg_conninfo: str, mosquitto: Mosquitto, project_id: str,
                                                     tmp_path: Path) -> None:
    _passes(ingest_faults.r10_random_restarts(pg_conninfo, mosquitto.port, tmp_path, project_id, restarts=6))


def test_r9_gateway_disk_full(mosquitto: Mosquitto, pg_conninfo: str, tmp_path: Path, project_id: str) -> None:
    from tests.faults.disk_full import MountRefused, r9_disk_full

    workdir = Path(tempfile.mkdtemp(prefix="mrv-r9-"))
    try:
        _passes(r9_disk_full(mosquitto, pg_conninfo, workdir, project_id))
    except MountRefused as e:
        pytest.skip(f"R9 needs a small file system: {e}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_r4_gateway_offline_24_h_of_simulated_time(mosquitto: Mosquitto, pg_conninfo: str, broker_dir: Path,
                                                   postgres_session: Postgres, pg_template: str,
                                                   tmp_path: Path) -> None:
    from tests.faults.outage import r4_gateway_outage

    second = Mosquitto(broker_dir / "second").start()
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_session.create_database(name, template=pg_template)
    try:
        _passes(r4_gateway_outage((mosquitto, second), (pg_conninfo, postgres_session.conninfo(name)), tmp_path))
    finally:
        second.kill()
        postgres_session.drop_database(name)


def test_r6_fuzzed_payloads_scenario_reports_its_record() -> None:
    # The short form of R6 itself is tests/ingest/test_fuzz.py (3,000 cases); this checks the record.
    from tests.faults.inputs import r6_fuzzed_payloads

    _passes(r6_fuzzed_payloads(300))


def test_r8_every_tampered_envelope_fails_verification_by_name(pg_conninfo: str) -> None:
    from tests.faults.inputs import r8_tamper_after_anchoring

    _passes(r8_tamper_after_anchoring(pg_conninfo, envelopes=6))
