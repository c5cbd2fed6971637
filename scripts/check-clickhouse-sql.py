#!/usr/bin/env python3
"""Check that Clickstitch's ClickHouse SQL runs on both old and new ClickHouse.

Engines:
  * chdb        -- embedded modern ClickHouse (PyPI `chdb`), always used; every run gets a
                   fresh Session in a temporary directory.
  * server      -- an already running server, typically Debian's ClickHouse 18.16, reached
                   either with `clickhouse-client` over the native protocol (--client-port) or
                   over HTTP (--http-url). Skipped when neither option is given.
                   (A throwaway 18.16 server: `cargo test` harness in testkit/, or start one by
                   hand with a config in /tmp.)

Inputs:
  * --migrations PATH   .sql files, or directories of them; all files are applied in file-name
                        order (not argument order).
  * --queries PATH      .sql files or directories; every statement is executed after all
                        migrations and must not fail. Results are discarded.

Statements end with a `;` at the end of a line (ignoring trailing whitespace and comments);
`-- ...` line comments and `/* ... */` block comments outside string literals are dropped.
Statements run with a scratch database as the current database (created fresh per run, dropped
afterwards on the server unless --keep-database), so unqualified table names never collide with
anything else on a shared server. Statements that name their own databases are run as written.

Prints OK/FAIL per statement per engine, then a summary; exits 1 if anything failed, 2 on usage
or setup errors.

Example:
  scripts/check-clickhouse-sql.py --migrations aggregator/migrations \\
      --queries aggregator/queries --client-port 9000
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Statement:
    """One SQL statement and where it came from."""

    kind: str  # "migration" or "query"
    path: Path
    line: int
    sql: str

    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def summary(self, width: int = 72) -> str:
        flat = " ".join(self.sql.split())
        return flat if len(flat) <= width else flat[: width - 3] + "..."


@dataclass
class Outcome:
    ok: bool
    message: str = ""


@dataclass
class EngineRun:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    setup_error: str | None = None


# --------------------------------------------------------------------------------------------
# Reading and splitting SQL files


def collect_files(paths: list[str]) -> list[Path]:
    """All .sql files named directly or found (recursively) under directories, by file name."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(f for f in p.rglob("*.sql") if f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            print(f"error: {raw}: no such file or directory", file=sys.stderr)
            raise SystemExit(2)
    # File-name order (001_x.sql, 002_y.sql, ...), then full path to break ties deterministically.
    return sorted(set(files), key=lambda f: (f.name, str(f)))


def split_statements(text: str) -> list[tuple[int, str]]:
    """Split SQL text into (first line number, statement) pairs.

    Comments outside quotes are removed; a statement ends at a `;` that is the last
    non-blank character of a line (the `;` itself is dropped).
    """
    statements: list[tuple[int, str]] = []
    current: list[str] = []
    start_line = 0
    quote: str | None = None  # inside '...', "..." or `...`
    in_block_comment = False

    for lineno, line in enumerate(text.splitlines(), start=1):
        out = []
        i = 0
        while i < len(line):
            ch = line[i]
            nxt = line[i + 1] if i + 1 < len(line) else ""
            if in_block_comment:
                if ch == "*" and nxt == "/":
                    in_block_comment = False
                    i += 2
                else:
                    i += 1
                continue
            if quote:
                out.append(ch)
                if ch == "\\" and nxt:
                    out.append(nxt)
                    i += 2
                    continue
                if ch == quote:
                    if nxt == quote:  # doubled quote inside a literal
                        out.append(nxt)
                        i += 2
                        continue
                    quote = None
                i += 1
                continue
            if ch == "-" and nxt == "-":
                break  # rest of the line is a comment
            if ch == "/" and nxt == "*":
                in_block_comment = True
                i += 2
                continue
            if ch in ("'", '"', "`"):
                quote = ch
            out.append(ch)
            i += 1
        kept = "".join(out).rstrip()
        if kept.strip() and not current:
            start_line = lineno
        if kept.strip() or current:
            current.append(kept)
        if quote is None and not in_block_comment and kept.endswith(";"):
            sql = "\n".join(current).rstrip()[:-1].strip()
            if sql:
                statements.append((start_line, sql))
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append((start_line, tail))
    return statements


def load_statements(kind: str, files: list[Path]) -> list[Statement]:
    result = []
    for f in files:
        for line, sql in split_statements(f.read_text(encoding="utf-8")):
            result.append(Statement(kind, f, line, sql))
    return result


# --------------------------------------------------------------------------------------------
# Engines


class ChdbEngine:
    """Modern ClickHouse, embedded, in a fresh temporary session."""

    def __init__(self, database: str) -> None:
        try:
            from chdb import session  # noqa: PLC0415 (optional dependency, imported lazily)
        except ImportError as e:  # pragma: no cover
            raise RuntimeError("python module `chdb` is not installed (pip install chdb)") from e
        self._dir = tempfile.mkdtemp(prefix="clickstitch-sqlcheck-chdb-")
        self._session = session.Session(self._dir)
        self.version = str(self._session.query("SELECT version()", "TSV")).strip()
        self.name = f"chdb (ClickHouse {self.version})"
        self._session.query(f"CREATE DATABASE {database}")
        self._session.query(f"USE {database}")

    def run(self, sql: str) -> Outcome:
        try:
            self._session.query(sql, "TSV")
            return Outcome(True)
        except Exception as e:  # chdb raises ChdbError (or RuntimeError in older versions)
            return Outcome(False, str(e).strip())

    def close(self) -> None:
        try:
            self._session.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


class ClientEngine:
    """A running server reached through `clickhouse-client` (native TCP protocol)."""

    def __init__(self, args: argparse.Namespace, database: str) -> None:
        self._base = [
            args.client,
            "--host", args.client_host,
            "--port", str(args.client_port),
            "--user", args.user,
        ]
        if args.password:
            self._base += ["--password", args.password]
        self._database = database
        self._keep = args.keep_database
        where = f"{args.client_host}:{args.client_port}"
        version = self._exec("SELECT version()", database=None)
        if not version.ok:
            raise RuntimeError(f"cannot reach ClickHouse at {where}: {version.message}")
        self.version = version.message.strip()
        self.name = f"server {where} (ClickHouse {self.version}, clickhouse-client)"
        created = self._exec(f"CREATE DATABASE {database}", database=None)
        if not created.ok:
            raise RuntimeError(f"cannot create scratch database: {created.message}")

    def _exec(self, sql: str, database: str | None) -> Outcome:
        cmd = list(self._base)
        if database:
            cmd += ["--database", database]
        cmd += ["--query", sql]
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return Outcome(False, str(e))
        if proc.returncode == 0:
            return Outcome(True, proc.stdout)
        return Outcome(False, (proc.stderr or proc.stdout).strip())

    def run(self, sql: str) -> Outcome:
        outcome = self._exec(sql, self._database)
        return Outcome(True) if outcome.ok else outcome

    def close(self) -> None:
        if not self._keep:
            self._exec(f"DROP DATABASE IF EXISTS {self._database}", database=None)


class HttpEngine:
    """A running server reached through its HTTP interface."""

    def __init__(self, args: argparse.Namespace, database: str) -> None:
        self._url = args.http_url.rstrip("/")
        self._auth = {}
        if args.user != "default" or args.password:
            token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
            self._auth = {"Authorization": f"Basic {token}"}
        self._database = database
        self._keep = args.keep_database
        version = self._exec("SELECT version()", database=None)
        if not version.ok:
            raise RuntimeError(f"cannot reach ClickHouse at {self._url}: {version.message}")
        self.version = version.message.strip()
        self.name = f"server {self._url} (ClickHouse {self.version}, HTTP)"
        created = self._exec(f"CREATE DATABASE {database}", database=None)
        if not created.ok:
            raise RuntimeError(f"cannot create scratch database: {created.message}")

    def _exec(self, sql: str, database: str | None) -> Outcome:
        params = {"wait_end_of_query": "1"}
        if database:
            params["database"] = database
        url = f"{self._url}/?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(
            url, data=sql.encode("utf-8"), method="POST", headers=self._auth
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return Outcome(True, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace").strip()
            return Outcome(False, f"HTTP {e.code}: {body}")
        except (urllib.error.URLError, OSError) as e:
            return Outcome(False, str(e))

    def run(self, sql: str) -> Outcome:
        outcome = self._exec(sql, self._database)
        return Outcome(True) if outcome.ok else outcome

    def close(self) -> None:
        if not self._keep:
            self._exec(f"DROP DATABASE IF EXISTS {self._database}", database=None)


def run_engine(make, statements: list[Statement], label: str) -> EngineRun:
    try:
        engine = make()
    except Exception as e:  # noqa: BLE001 -- report any setup failure as such
        return EngineRun(label, setup_error=str(e))
    run = EngineRun(engine.name)
    try:
        for st in statements:
            run.outcomes.append(engine.run(st.sql))
    finally:
        engine.close()
    return run


# --------------------------------------------------------------------------------------------
# Main


def first_line(message: str, width: int = 200) -> str:
    line = " ".join(message.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-m", "--migrations", action="append", default=[], metavar="PATH",
                        help=".sql file or directory of migrations (repeatable)")
    parser.add_argument("-q", "--queries", action="append", default=[], metavar="PATH",
                        help=".sql file or directory of queries (repeatable)")
    parser.add_argument("--client-port", "--port", type=int, metavar="PORT",
                        help="native TCP port of a running server (e.g. ClickHouse 18.16)")
    parser.add_argument("--client-host", default="127.0.0.1", metavar="HOST")
    parser.add_argument("--client", default="clickhouse-client", metavar="BIN",
                        help="clickhouse-client executable (default: %(default)s)")
    parser.add_argument("--http-url", "--url", metavar="URL",
                        help="HTTP URL of a running server, e.g. http://127.0.0.1:8123")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--no-chdb", action="store_true", help="skip the embedded engine")
    parser.add_argument("--database", metavar="NAME",
                        help="scratch database name (default: sqlcheck_<pid>_<time>)")
    parser.add_argument("--keep-database", action="store_true",
                        help="do not drop the scratch database on the server afterwards")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print full error messages")
    args = parser.parse_args(argv)

    if not args.migrations and not args.queries:
        parser.error("give at least one --migrations or --queries path")
    if args.client_port and args.http_url:
        parser.error("use either --client-port or --http-url, not both")

    statements = load_statements("migration", collect_files(args.migrations)) + load_statements(
        "query", collect_files(args.queries)
    )
    if not statements:
        print("error: no SQL statements found", file=sys.stderr)
        return 2
    database = args.database or f"sqlcheck_{os.getpid()}_{time.time_ns()}"

    runs: list[EngineRun] = []
    if not args.no_chdb:
        runs.append(run_engine(lambda: ChdbEngine(database), statements, "chdb"))
    if args.client_port:
        if shutil.which(args.client) is None and not Path(args.client).is_file():
            print(f"error: {args.client} not found", file=sys.stderr)
            return 2
        runs.append(run_engine(lambda: ClientEngine(args, database), statements, "server"))
    elif args.http_url:
        runs.append(run_engine(lambda: HttpEngine(args, database), statements, "server"))
    else:
        print("note: no --client-port/--http-url given; skipping the server (ClickHouse 18.16) "
              "check", file=sys.stderr)
    if not runs:
        print("error: no engine selected", file=sys.stderr)
        return 2

    print("engines:")
    for i, run in enumerate(runs, start=1):
        print(f"  [{i}] {run.name}" + (f"  SETUP FAILED: {run.setup_error}" if run.setup_error else ""))
    print()

    failures = 0
    for idx, st in enumerate(statements):
        marks = []
        details = []
        for i, run in enumerate(runs, start=1):
            if run.setup_error:
                marks.append(f"[{i}] ----")
                continue
            outcome = run.outcomes[idx]
            marks.append(f"[{i}] {'OK  ' if outcome.ok else 'FAIL'}")
            if not outcome.ok:
                failures += 1
                msg = outcome.message if args.verbose else first_line(outcome.message)
                details.append(f"      [{i}] {msg}")
        print(f"{'  '.join(marks)}  {st.kind:<9} {st.location()}  {st.summary()}")
        for d in details:
            print(d)

    setup_failures = sum(1 for r in runs if r.setup_error)
    print()
    print(f"{len(statements)} statements, {len(runs)} engine(s): "
          f"{failures} failure(s), {setup_failures} engine setup failure(s)")
    return 1 if failures or setup_failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
