"""API keys read, parsed and checked directly (focused tests that kill mutants of
security/keys.py; the HTTP side is tests/security/test_keys.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from lensforge.errors import ValidationError
from lensforge.security.keys import KeyStore, parse_scopes
from lensforge.store.tables import api_keys


def test_scopes_parse_sorted_and_deduplicated() -> None:
    assert parse_scopes(" read,admin, read ,") == ("admin", "read")
    assert parse_scopes(["analyze", " read"]) == ("analyze", "read")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("read, bogus,zz", "Scopes must be some of analyze, read, admin; got bogus, zz."),
        (" , ", "Scopes must be some of analyze, read, admin; got none."),
    ],
)
def test_a_wrong_scope_list_says_what_is_allowed_and_what_was_given(
    text: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_scopes(text)
    assert str(raised.value) == message


def test_keys_are_listed_oldest_first(engine: Engine) -> None:
    keys = KeyStore(engine)
    made = [keys.create(name, ("read",))[0] for name in ("a", "b", "c")]
    # Creation times in the opposite order of the rows' insertion: the listing must sort.
    with engine.begin() as conn:
        for age, info in enumerate(made):
            conn.execute(update(api_keys).where(api_keys.c.id == info.id).values(created_at=-age))
    assert [info.name for info in keys.list()] == ["c", "b", "a"]
