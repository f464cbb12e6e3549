"""A project-managed PostgreSQL cluster: its own data dir, port and role, for the demo and the tests.

Layout under `data_dir` (which stays ours; the cluster files belong to the service user)::

    pgdata/      the cluster (initdb), owned by `postgres` when we run as root
    socket/      the unix socket directory (peer authentication for the service user)
    pgpass       generated passwords of the superuser and the application role (0600)
    postgres.log server log

TCP listens on 127.0.0.1 only, with scram-sha-256; clients find the password through `passfile=` in the
conninfo, so no secret ever appears on a command line. `fsync` and `synchronous_commit` stay on: the
ingest service acknowledges an MQTT message only after its commit, and that promise is only as good
as the commit's durability.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from managed_services._process import apt_install, free_port

SERVICE_USER = "postgres"
SUPERUSER = "postgres"
# Unix sockets live in a path of at most 107 bytes; longer data dirs serve TCP only.
_MAX_SOCKET_PATH = 100
_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "max_locks_per_transaction": "256",  # readings partitions: a batch may touch several
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}


def find_bindir() -> Path:
    """The bin directory of the newest installed PostgreSQL, installing the Debian package if needed."""
    for attempt in range(2):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                       key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0))
        if found:
            return found[-1].parent
        if attempt == 0:
            apt_install("postgresql")
    raise RuntimeError("PostgreSQL is not installed under /usr/lib/postgresql and could not be installed")


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


class Postgres:
    """Start, stop, restart and kill a cluster on 127.0.0.1:`port` with its state in `data_dir`.

    The first start runs initdb and creates `user` (LOGIN CREATEDB) and its database `database`.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, user: str = "mrv",
                 database: str = "mrv") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.user = user
        self.database = database
        self.pgdata = self.data_dir / "pgdata"
        self.socket_dir = self.data_dir / "socket"
        self.passfile = self.data_dir / "pgpass"
        self.log_path = self.data_dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- connection strings -------------------------------------------------------------------------
    def conninfo(self, dbname: str | None = None, user: str | None = None) -> str:
        """libpq conninfo for the application role (or `user`); the password comes from `passfile`."""
        return (f"host=127.0.0.1 port={self.port} dbname={dbname or self.database} "
                f"user={user or self.user} passfile={self.passfile} connect_timeout=5")

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        return self.conninfo(dbname, SUPERUSER)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Postgres:
        bindir = find_bindir()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bindir)
        log = self.log_path.open("ab")
        args = [str(bindir / "postgres"), "-D", str(self.pgdata), "-c", f"port={self.port}",
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._socket_setting()}"]
        for name, value in _SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        # Own process group: kill() takes the postmaster and its backends down at once, like a crash.
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True,
                                     **self._as_service_user())
        log.close()
        self._wait_ready(bindir, timeout)
        self._ensure_role_and_database()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): running transactions roll back, committed ones are on disk."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self) -> None:
        """kill -9 of the postmaster and every backend; the next start runs crash recovery."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self, timeout: float = 30.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_standby(self, data_dir: Path, port: int | None = None, timeout: float = 60.0) -> Postgres:
        """A streaming hot standby of this (running) cluster in `data_dir`, started: pg_basebackup of
        everything, then replication as the superuser over TCP (the default pg_hba allows it from
        127.0.0.1). It shares this cluster's roles and passwords, and refuses every write."""
        standby = Postgres(data_dir, port, user=self.user, database=self.database)
        standby.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(standby.data_dir, 0o755)  # noqa: S103 (the service user must reach pgdata and socket inside)
        for directory in (standby.pgdata, standby.socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        _write_secret(standby.passfile, self.passfile.read_text())
        # The server's own copy of the password it replicates with: it reads it as the service user.
        replication_pass = standby.data_dir / "replication.pgpass"
        _write_secret(replication_pass, f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self._password_of(SUPERUSER)}\n")
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(SERVICE_USER)
            for path in (standby.pgdata, standby.socket_dir, replication_pass):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        source = f"host=127.0.0.1 port={self.port} user={SUPERUSER} passfile={replication_pass}"
        result = subprocess.run(
            [str(find_bindir() / "pg_basebackup"), "-D", str(standby.pgdata), "-d", source, "-R", "-X", "stream",
             "-c", "fast"], capture_output=True, text=True, check=False, timeout=timeout, **self._as_service_user())
        if result.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {result.stderr.strip()[-2000:]}")
        return standby.start(timeout)

    # -- administration -----------------------------------------------------------------------------
    def create_database(self, name: str, template: str | None = None) -> None:
        from psycopg import sql

        query = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._admin(query)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, query: Any) -> None:
        import psycopg

        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as conn:
            conn.execute(query)

    # -- internals ----------------------------------------------------------------------------------
    def _socket_setting(self) -> str:
        return str(self.socket_dir) if len(str(self.socket_dir)) <= _MAX_SOCKET_PATH else ""

    def _as_service_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}

    def _check_reachable(self) -> None:
        """The service user must be able to traverse every parent of the data dir."""
        for parent in self.data_dir.parents:
            if not parent.stat().st_mode & 0o001:
                raise RuntimeError(f"the {SERVICE_USER} user cannot reach {self.data_dir}: {parent} is not "
                                   "searchable by others (chmod o+x it, or choose a data dir elsewhere)")

    def _initdb(self, bindir: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._check_reachable()
        os.chmod(self.data_dir, 0o755)  # noqa: S103 (the service user must reach pgdata and socket inside)
        superuser_password = secrets.token_urlsafe(24)
        _write_secret(self.passfile, f"127.0.0.1:*:*:{SUPERUSER}:{superuser_password}\n"
                                     f"127.0.0.1:*:*:{self.user}:{secrets.token_urlsafe(24)}\n")
        pwfile = self.pgdata.with_name(".initdb-pw")
        for directory in (self.pgdata, self.socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        _write_secret(pwfile, superuser_password + "\n")
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(SERVICE_USER)
            for path in (self.pgdata, self.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            result = subprocess.run(
                [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--pwfile", str(pwfile),
                 "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, check=False, **self._as_service_user())
        finally:
            pwfile.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.pgdata}: {result.stderr.strip()[-2000:]}")

    def _wait_ready(self, bindir: Path, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited with {self.proc.returncode} during start\n{tail}")
            ready = subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-t", "1"], check=False).returncode == 0
            if ready:
                return
            time.sleep(0.05)
        raise TimeoutError(f"postgres not ready on 127.0.0.1:{self.port} after {timeout} s")

    def _password_of(self, user: str) -> str:
        for line in self.passfile.read_text().splitlines():
            *_, name, password = line.split(":", 4)
            if name == user:
                return password
        raise RuntimeError(f"no password for {user} in {self.passfile}")

    def _ensure_role_and_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [self.user]).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self._password_of(self.user))))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.database), sql.Identifier(self.user)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m managed_services.postgres",
        description="Run the project's PostgreSQL in the foreground until Ctrl-C (initdb on first use).",
        epilog="example: python -m managed_services.postgres --port 5432 --data-dir var/postgres")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--data-dir", type=Path, default=Path("var/postgres"))
    parser.add_argument("--user", default="mrv", help="application role, created on first start")
    parser.add_argument("--database", default="mrv", help="its database, created on first start")
    args = parser.parse_args(argv)
    server = Postgres(args.data_dir, args.port, user=args.user, database=args.database).start()
    print(f"postgres ready: conninfo '{server.conninfo()}', log {server.log_path}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        assert server.proc is not None
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
