"""Running compiled statements on the DBAPI cursor: the job store's per-job hot path.

SQLAlchemy builds and compiles each statement once per dialect; executing it through
SQLAlchemy's per-call machinery costs several times what SQLite itself takes for these small
statements, so the hot path hands the compiled SQL straight to the driver's cursor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from lensforge.store.records import JobRecord

if TYPE_CHECKING:
    from lensforge.store.store import JobStore


def json_dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson stops at 64-bit integers; JSON itself does not
        return json.dumps(value)


def json_loads(value: Any) -> Any:
    # SQLite gives JSON columns NUMERIC affinity: a stored scalar such as '3' reads back as 3.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


_JSON_COLUMNS = ("inputs", "result", "error")
_JSON_PARAMS = frozenset(_JSON_COLUMNS + tuple(f"v_{name}" for name in _JSON_COLUMNS))


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    order: tuple[str, ...] | None  # positional parameter names (qmark dialects)
    defaults: dict[str, Any]  # values of literal binds inside the statement


class Tx:
    """Runs compiled statements on one DBAPI cursor inside a transaction."""

    def __init__(self, store: JobStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor

    def run(self, statement: Any, params: dict[str, Any], cache: bool = True) -> None:
        compiled = self.store._compile(statement, cache)
        values = {**compiled.defaults, **params}
        for key in _JSON_PARAMS.intersection(params):
            if values[key] is not None:
                values[key] = json_dumps(values[key])
        if compiled.order is None:
            self.cursor.execute(compiled.sql, values)
        else:
            self.cursor.execute(compiled.sql, tuple(values[name] for name in compiled.order))

    def rows(self, statement: Any, params: dict[str, Any], cache: bool = True) -> list[Any]:
        self.run(statement, params, cache)
        return list(self.cursor.fetchall())

    def records(self, statement: Any, params: dict[str, Any]) -> list[JobRecord]:
        rows = self.rows(statement, params)
        if not rows:
            return []
        names = [column[0] for column in self.cursor.description]
        decode = self.store.is_sqlite  # SQLite returns JSON as text; psycopg decodes it
        return [record_from_row(dict(zip(names, row, strict=True)), decode) for row in rows]


def record_from_row(data: dict[str, Any], decode_json: bool) -> JobRecord:
    if decode_json:
        for column in _JSON_COLUMNS:
            data[column] = json_loads(data[column])
    return JobRecord.from_mapping(data)
