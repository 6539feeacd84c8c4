"""Running compiled statements on the DBAPI cursor: the job store's per-job hot path.

SQLAlchemy builds and compiles each statement once per dialect (:class:`StatementCache`);
executing it through SQLAlchemy's per-call machinery costs several times what SQLite itself
takes for these small statements, so :class:`Tx` hands the compiled SQL straight to the
driver's cursor. Private to the store package.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Dialect
from sqlalchemy.exc import IntegrityError

from lensforge.store import notices
from lensforge.store.engine import StoreBusy, is_busy, store_failed
from lensforge.store.records import JOB_FIELDS, JobRecord
from lensforge.store.tables import Status


def json_dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson stops at 64-bit integers; JSON itself does not
        return json.dumps(value)


def json_loads(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def sqlite_json(value: Any) -> str | bytes:
    """JSON text for a SQLite JSON column. Such a column has NUMERIC affinity, which turns
    the text of a number into an INTEGER or REAL ('3.0' comes back as the integer 3): a
    top-level number is bound as a BLOB instead, which no affinity converts."""
    text = json_dumps(value)
    return text.encode() if type(value) is int or type(value) is float else text


JSON_COLUMNS = ("inputs", "result", "error", "retry_on")
_JSON_PARAMS = frozenset(JSON_COLUMNS + tuple(f"v_{name}" for name in JSON_COLUMNS))


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    order: tuple[str, ...] | None  # positional parameter names (qmark dialects)
    defaults: dict[str, Any]  # values of literal binds inside the statement
    json_params: frozenset[str] = frozenset()  # positional parameters that carry JSON


class StatementCache:
    """SQLAlchemy statements compiled once for one dialect, keyed by the statement object
    (the store's statements are module constants, built once)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[int, tuple[Any, Compiled]] = {}

    def compile(self, statement: Any, cache: bool = True) -> Compiled:
        found = self._compiled.get(id(statement)) if cache else None
        if found is not None:
            return found[1]
        c = statement.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": True})
        order = tuple(c.positiontup) if c.positional and c.positiontup else None
        compiled = Compiled(str(c), order, dict(c.params), _JSON_PARAMS.intersection(order or ()))
        if cache:  # the statement is kept too, so that its id is never reused
            self._compiled[id(statement)] = (statement, compiled)
        return compiled


class Tx:
    """Runs compiled statements on one DBAPI cursor inside a transaction.

    Driver errors surface as SQLAlchemy's IntegrityError (a constraint said no: the caller
    may handle it) or as StoreError (the database failed), whichever statement raised them.
    """

    def __init__(self, statements: StatementCache, cursor: Any, *, is_sqlite: bool) -> None:
        self.statements = statements
        self.cursor = cursor
        self.is_sqlite = is_sqlite
        dbapi = statements.dialect.dbapi
        assert dbapi is not None
        self._integrity_error: type[Exception] = dbapi.IntegrityError
        self._database_error: type[Exception] = dbapi.Error
        self._encode = sqlite_json if is_sqlite else json_dumps
        self._later: list[tuple[Compiled, Any]] = []
        self.finished: list[str] = []  # jobs this transaction ended (for notices)
        self.pending = 0  # jobs it left PENDING for anyone to claim

    def _args(self, compiled: Compiled, params: dict[str, Any]) -> Any:
        values = {**compiled.defaults, **params}
        json_keys = compiled.json_params if compiled.order else _JSON_PARAMS.intersection(params)
        for key in json_keys:
            if values[key] is not None:
                values[key] = self._encode(values[key])
        return values if compiled.order is None else tuple(map(values.__getitem__, compiled.order))

    def run(self, statement: Any, params: dict[str, Any], cache: bool = True) -> None:
        compiled = self.statements.compile(statement, cache)
        self._execute(self.cursor.execute, compiled.sql, self._args(compiled, params))

    def later(self, statement: Any, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """Run an insert of ``values`` (for the bind parameters ``names``) at commit time,
        together with the others of its kind: one driver call for all of them."""
        compiled = self.statements.compile(statement)
        if compiled.order != names or compiled.json_params:
            values = self._args(compiled, dict(zip(names, values, strict=True)))
        self._later.append((compiled, values))

    def flush(self) -> None:
        """Run the deferred inserts, in the order they were asked for; on PostgreSQL, queue
        the transaction's job notices (see :mod:`~lensforge.store.notices`)."""
        if not self.is_sqlite and (self.finished or self.pending):
            for payload in notices.payloads(self.finished, self.pending):
                self._execute(self.cursor.execute, notices.NOTIFY, (notices.CHANNEL, payload))
            self.finished, self.pending = [], 0
        while self._later:
            compiled = self._later[0][0]
            n = next((i for i, (c, _) in enumerate(self._later) if c is not compiled), None)
            group, self._later = self._later[:n], ([] if n is None else self._later[n:])
            self._execute(self.cursor.executemany, compiled.sql, [args for _, args in group])

    def _execute(self, method: Any, sql: str, args: Any) -> None:
        try:
            method(sql, args)
        except self._integrity_error as exc:
            raise IntegrityError(sql, None, exc) from exc
        except self._database_error as exc:
            if is_busy(exc):  # a caller that does not wait may try again elsewhere
                raise StoreBusy("The job store is locked by another connection.") from exc
            raise store_failed(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an exception undoes only what ran inside it."""
        self.cursor.execute("SAVEPOINT lensforge_op")
        deferred, finished, pending = len(self._later), len(self.finished), self.pending
        try:
            yield
        except BaseException:
            del self._later[deferred:]
            del self.finished[finished:]
            self.pending = pending
            self.cursor.execute("ROLLBACK TO SAVEPOINT lensforge_op")
            self.cursor.execute("RELEASE SAVEPOINT lensforge_op")
            raise
        self.cursor.execute("RELEASE SAVEPOINT lensforge_op")

    def rows(self, statement: Any, params: dict[str, Any], cache: bool = True) -> list[Any]:
        self.run(statement, params, cache)
        return list(self.cursor.fetchall())

    def records(self, statement: Any, params: dict[str, Any]) -> list[JobRecord]:
        rows = self.rows(statement, params)
        if not rows:
            return []
        decode = self.is_sqlite  # SQLite returns JSON as text; psycopg decodes it
        names = tuple(map(itemgetter(0), self.cursor.description))
        if names == JOB_FIELDS:  # every job column, in the record's order
            return [record_from_values(list(row), decode) for row in rows]
        return [record_from_row(dict(zip(names, row, strict=True)), decode) for row in rows]


def record_from_row(data: dict[str, Any], decode_json: bool) -> JobRecord:
    if decode_json:
        for column in JSON_COLUMNS:
            data[column] = json_loads(data[column])
    return JobRecord.from_mapping(data)


_STATUS = JOB_FIELDS.index("status")
_CANCEL_REQUESTED = JOB_FIELDS.index("cancel_requested")
_RETRY_ON = JOB_FIELDS.index("retry_on")
_JSON_INDEXES = tuple(JOB_FIELDS.index(column) for column in JSON_COLUMNS)


def record_from_values(values: list[Any], decode_json: bool) -> JobRecord:
    """A record from a row of every job column in :data:`JOB_FIELDS` order (the hot path)."""
    if decode_json:
        for index in _JSON_INDEXES:
            if values[index] is not None:
                values[index] = json_loads(values[index])
    values[_STATUS] = Status(values[_STATUS])
    values[_CANCEL_REQUESTED] = bool(values[_CANCEL_REQUESTED])  # SQLite gives 0/1
    if values[_RETRY_ON] is None:  # jobs created before retry policies were stored
        values[_RETRY_ON] = []
    return JobRecord(*values)
