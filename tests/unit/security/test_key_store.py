"""API keys read, parsed and checked directly (focused tests that kill mutants of
security/keys.py; the HTTP side is tests/security/test_keys.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from lensforge.errors import StoreError, ValidationError
from lensforge.security.keys import Caller, KeyStore, key_id, parse_scopes
from lensforge.store.tables import api_keys
from tests.unit.security.conftest import Clock


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


@pytest.mark.parametrize(
    ("presented", "expected"),
    [
        ("lf_0123456789ab_secret_with_underscores", "0123456789ab"),
        ("  lf_0123456789ab_s  ", "0123456789ab"),
        ("lf_0123456789a_s", None),  # the id part is 12 characters
        ("xx_0123456789ab_s", None),
        ("lf_0123456789ab", None),
        ("lf 0123456789ab s", None),
    ],
)
def test_the_public_id_of_a_presented_key(presented: str, expected: str | None) -> None:
    assert key_id(presented) == expected


def test_a_key_lookup_is_trusted_for_cache_s_then_read_again(engine: Engine, clock: Clock) -> None:
    """The documented revocation lag: a key revoked elsewhere (another server, the CLI) still
    passes here until this server's cached lookup is ``cache_s`` old, and not a moment longer."""
    here, elsewhere = KeyStore(engine, cache_s=2.0), KeyStore(engine)
    info, secret = here.create("k", ("read",))
    assert here.verify(secret) == Caller(info.id, frozenset({"read"}), "k")
    assert elsewhere.revoke(info.id)
    clock.now += 1.0
    assert here.verify(secret) is not None  # from the cache: no database read
    clock.now += 1.0  # exactly cache_s old: read again
    assert here.verify(secret) is None


def test_an_unreadable_key_table_is_a_store_error_naming_the_check(bare_engine: Engine) -> None:
    keys = KeyStore(bare_engine)
    with pytest.raises(StoreError) as raised:
        keys.verify("lf_0123456789ab_secret")
    assert str(raised.value).startswith("Checking API keys failed:")
    with pytest.raises(StoreError) as counted:
        keys.enabled()
    assert str(counted.value).startswith("Checking API keys failed:")


def test_only_the_exact_key_format_verifies(engine: Engine) -> None:
    keys = KeyStore(engine)
    _, secret = keys.create("k", ("read",))
    prefix, key, raw = secret.split("_", 2)
    assert keys.verify(f"  {secret} ") is not None
    assert keys.verify(f"xx_{key}_{raw}") is None  # the right id and secret, the wrong prefix
    assert keys.verify(f"{prefix}_{key}x_{raw}") is None
    assert keys.verify(f"{prefix}_{key}_{raw}x") is None


def test_a_secret_carries_32_random_bytes_and_a_16_byte_salt(engine: Engine) -> None:
    keys = KeyStore(engine)
    info, secret = keys.create("k", ("read",))
    assert len(secret.split("_", 2)[2]) == 43  # base64url of 32 bytes, unpadded
    with engine.connect() as conn:
        salt = conn.execute(select(api_keys.c.salt).where(api_keys.c.id == info.id)).scalar_one()
    assert len(bytes.fromhex(salt)) == 16


def test_auth_off_is_trusted_for_cache_s_and_auth_on_for_good(engine: Engine, clock: Clock) -> None:
    """An answer of "no keys yet" is re-read every ``cache_s``; once a key exists, auth
    stays on without another read (revoking every key must not open the server)."""
    here, elsewhere = KeyStore(engine, cache_s=2.0), KeyStore(engine)
    assert not here.enabled()
    info, _ = elsewhere.create("k", ("read",))
    clock.now += 1.9
    assert not here.enabled()  # the cached answer, no database read
    clock.now += 0.1
    assert here.enabled()
    elsewhere.revoke(info.id)
    clock.now += 60
    assert here.enabled() and KeyStore(engine, cache_s=0).enabled()
