"""Tenant isolation: a key without admin sees, reads, streams, cancels and lists only its own
jobs and blobs; another tenant's answers 404 (as if it did not exist); idempotency keys are
per caller. Admin keys see everything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins_for_tests import Artist
from tests.security.conftest import (
    MCP_HEADERS,
    MCP_INIT,
    PLUGINS,
    Secure,
    Tenant,
    assert_envelope,
    b64,
    make_settings,
    open_secure,
    run_echo,
    sha256,
    start_sleeper,
    upload_png,
)
from tests.support import png


def job_ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {job["id"] for job in response.json()["jobs"]}


def strip_volatile(error: dict[str, Any]) -> dict[str, Any]:
    """An error envelope without what differs between two requests (time, the id asked for)."""
    return {
        k: v for k, v in error.items() if k not in ("timestamp", "job_id", "message", "request_id")
    }


def test_listings_show_only_ones_own_jobs(shared: Secure) -> None:
    client, alice, bob = shared.client, shared.alice, shared.bob
    mine = {run_echo(client, alice, "alice-private-input") for _ in range(3)}
    theirs = {run_echo(client, bob, "bob-private-input") for _ in range(2)}

    for query in ("", "?plugin=testing", "?tool=echo", "?status=SUCCESS", "?limit=500"):
        seen = job_ids(client.get(f"/v1/jobs{query}", headers=bob.headers))
        assert seen & mine == set() and theirs <= seen
        legacy = client.get(f"/v1/analyze-execution/jobs{query}", headers=bob.headers)
        assert {job["id"] for job in legacy.json()["jobs"]} & mine == set()
    # A cursor naming alice's newest job does not open her page to bob.
    cursor = max(mine)
    after = job_ids(client.get(f"/v1/jobs?cursor={cursor}&limit=500", headers=bob.headers))
    assert after & mine == set()
    # Admin sees both tenants.
    everything = job_ids(client.get("/v1/jobs?limit=500", headers=shared.admin.headers))
    assert mine | theirs <= everything


def test_listings_never_include_inputs(shared: Secure) -> None:
    client = shared.client
    run_echo(client, shared.alice, "ALICE-INPUT-MARKER-7731")
    for tenant in (shared.bob, shared.admin, shared.alice):
        for url in ("/v1/jobs?limit=500", "/v1/analyze-execution/jobs?limit=500"):
            response = client.get(url, headers=tenant.headers)
            assert response.status_code == 200
            assert "ALICE-INPUT-MARKER-7731" not in response.text


def test_another_tenants_job_is_indistinguishable_from_a_missing_one(shared: Secure) -> None:
    client, bob = shared.client, shared.bob
    alice_job = run_echo(client, shared.alice)
    missing = "01a00000-0000-7000-8000-000000000000"
    for suffix in ("", "/result", "/events", "/stream"):
        theirs = assert_envelope(client.get(f"/v1/jobs/{alice_job}{suffix}", **bob.kw), 404)
        absent = assert_envelope(client.get(f"/v1/jobs/{missing}{suffix}", **bob.kw), 404)
        assert strip_volatile(theirs) == strip_volatile(absent)
        assert theirs["code"] == "job_not_found"
    legacy = "/v1/analyze-execution/jobs"
    for method, url in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        theirs = client.request(method, f"{legacy}/{alice_job}{url}", **bob.kw)
        absent = client.request(method, f"{legacy}/{missing}{url}", **bob.kw)
        assert theirs.status_code == absent.status_code == 404
        assert theirs.json() == absent.json()


def test_bob_cannot_cancel_alices_running_job(shared: Secure) -> None:
    client, alice, bob = shared.client, shared.alice, shared.bob
    job_id = start_sleeper(client, alice)
    try:
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=bob.headers).status_code == 404
        legacy = client.delete(f"/v1/analyze-execution/jobs/{job_id}", headers=bob.headers)
        assert legacy.status_code == 404
        job = client.get(f"/v1/jobs/{job_id}", headers=alice.headers).json()
        assert job["status"] in ("PENDING", "RUNNING") and not job["cancel_requested"]
    finally:
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers)
        assert cancelled.status_code in (200, 202), cancelled.text


def test_admin_reads_streams_and_cancels_any_job(shared: Secure) -> None:
    client, admin = shared.client, shared.admin.headers
    finished = run_echo(client, shared.bob, "bob")
    assert client.get(f"/v1/jobs/{finished}/result", headers=admin).json()["result"] == {
        "text": "bob",
        "times": 1,
    }
    stream = client.get(f"/v1/jobs/{finished}/stream", headers=admin)
    assert stream.status_code == 200 and "event: done" in stream.text
    running = start_sleeper(client, shared.bob)
    assert client.post(f"/v1/jobs/{running}/cancel", headers=admin).status_code in (200, 202)


def test_blobs_are_readable_only_by_tenants_that_sent_them(shared: Secure) -> None:
    client, alice, bob = shared.client, shared.alice, shared.bob
    digest = upload_png(client, alice, 44, 22)
    assert client.get(f"/v1/blobs/sha256:{digest}", headers=alice.headers).status_code == 200
    assert client.get(f"/v1/blobs/{digest}", headers=shared.admin.headers).status_code == 200
    theirs = assert_envelope(client.get(f"/v1/blobs/{digest}", headers=bob.headers), 404)
    absent = assert_envelope(client.get(f"/v1/blobs/{'0' * 64}", headers=bob.headers), 404)
    assert theirs["code"] == absent["code"] == "blob_not_found"
    # Content addressing: bob may read those bytes once he has sent them himself.
    data = png(44, 22, (44, 22, 7))
    assert sha256(data) == digest
    response = client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(data)}},
        headers=bob.headers,
    )
    assert response.status_code == 200
    assert client.get(f"/v1/blobs/{digest}", headers=bob.headers).content == data


def size_by_reference(shared: Secure, tenant: Tenant, ref: str) -> Any:
    return shared.client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "size", "inputs": {"image": {"blob": ref}}},
        headers=tenant.headers,
    )


def test_a_blob_reference_must_name_ones_own_blob(shared: Secure) -> None:
    digest = upload_png(shared.client, shared.alice, 45, 23)
    assert size_by_reference(shared, shared.alice, f"sha256:{digest}").status_code == 200
    theirs = assert_envelope(size_by_reference(shared, shared.bob, f"sha256:{digest}"), 404)
    absent = assert_envelope(size_by_reference(shared, shared.bob, f"sha256:{'1' * 64}"), 404)
    assert theirs["code"] == absent["code"] == "blob_not_found"
    assert size_by_reference(shared, shared.admin, f"sha256:{digest}").status_code == 200


@pytest.mark.parametrize("form", ["bare", "bare-upper", "prefix-upper", "padded"])
def test_a_blob_reference_in_any_accepted_spelling_must_name_ones_own_blob(
    shared: Secure, form: str
) -> None:
    digest = upload_png(shared.client, shared.alice, 46, 24)
    ref = {
        "bare": digest,
        "bare-upper": digest.upper(),
        "prefix-upper": f"SHA256:{digest}",
        "padded": f" sha256:{digest} ",
    }[form]
    response = size_by_reference(shared, shared.bob, ref)
    assert response.status_code == 404, response.text


def test_idempotency_keys_are_scoped_per_caller(shared: Secure) -> None:
    client, alice, bob = shared.client, shared.alice, shared.bob
    body = {"plugin": "testing", "tool": "echo", "inputs": {"text": "once"}}
    key = {"Idempotency-Key": "shared-key-0001"}
    first = client.post("/v1/jobs", json=body, headers={**alice.headers, **key})
    assert first.status_code == 202
    again = client.post("/v1/jobs", json=body, headers={**alice.headers, **key})
    assert again.status_code == 200 and again.json()["job_id"] == first.json()["job_id"]
    # Same key from bob: his own new job, never alice's (and no 409 telling him it is taken).
    other = client.post("/v1/jobs", json=body, headers={**bob.headers, **key})
    assert other.status_code == 202, other.text
    assert other.json()["job_id"] != first.json()["job_id"]
    different = {**body, "inputs": {"text": "something else"}}
    third = client.post("/v1/jobs", json=different, headers={**shared.reader.headers, **key})
    assert third.status_code == 403  # reader cannot submit at all
    fresh = shared.new_key("carol", ("analyze", "read"))
    fourth = client.post("/v1/jobs", json=different, headers={**fresh.headers, **key})
    assert fourth.status_code == 202, fourth.text
    # Alice reusing her key with another body is her own conflict, nobody else's.
    conflict = client.post("/v1/jobs", json=different, headers={**alice.headers, **key})
    assert conflict.status_code == 409


# -- MCP: the same isolation over the other interface ------------------------------------------


def mcp_session(shared: Secure, tenant: Tenant) -> dict[str, str]:
    headers = {**tenant.headers, **MCP_HEADERS}
    response = shared.client.post("/mcp", json=MCP_INIT, headers=headers)
    assert response.status_code == 200, response.text
    session = {
        **headers,
        "mcp-session-id": response.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-06-18",
    }
    notified = shared.client.post(
        "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
    )
    assert notified.status_code == 202
    return session


def mcp_call(shared: Secure, session: dict[str, str], method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 2, "method": method, "params": params}
    response = shared.client.post("/mcp", json=body, headers=session)
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):  # a session's answer
        events = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(events[-1])
    return response.json()


def test_mcp_resource_read_of_another_tenants_blob_is_refused(shared: Secure) -> None:
    digest = upload_png(shared.client, shared.alice, 47, 25)
    uri = {"uri": f"lensforge://blobs/{digest}"}
    own = mcp_call(shared, mcp_session(shared, shared.alice), "resources/read", uri)
    assert "result" in own, str(own)[:300]  # the control: the owner may read it
    answer = mcp_call(shared, mcp_session(shared, shared.bob), "resources/read", uri)
    assert "error" in answer and "result" not in answer, str(answer)[:300]


def test_mcp_tool_call_on_another_tenants_blob_is_refused(shared: Secure) -> None:
    digest = upload_png(shared.client, shared.alice, 48, 26)
    call = {"name": "testing_size", "arguments": {"image": {"uri": f"lensforge://blobs/{digest}"}}}
    own = mcp_call(shared, mcp_session(shared, shared.alice), "tools/call", call)
    assert own["result"]["structuredContent"] == {"width": 48, "height": 26}, str(own)[:300]
    answer = mcp_call(shared, mcp_session(shared, shared.bob), "tools/call", call)
    result = answer.get("result", {})
    assert "error" in answer or result.get("isError") is True, str(answer)[:300]
    assert result.get("structuredContent") != {"width": 48, "height": 26}


def test_every_job_records_the_key_that_created_it(shared: Secure) -> None:
    """Whichever interface created it (REST sync/async, ForgeSyte routes, MCP)."""
    client, store = shared.client, shared.app.state.services.store
    made: dict[str, Tenant] = {}
    made[run_echo(client, shared.alice)] = shared.alice
    made[start_sleeper(client, shared.analyst, 0.05)] = shared.analyst
    legacy = client.post(
        "/v1/analyze-execution/async",
        json={"plugin": "testing", "tool_name": "size", "image": b64(png(5, 5))},
        **shared.bob.kw,
    )
    made[legacy.json()["job_id"]] = shared.bob
    answer = mcp_call(
        shared,
        mcp_session(shared, shared.bob),
        "tools/call",
        {"name": "testing_echo", "arguments": {"text": "via mcp"}},
    )
    made[answer["result"]["_meta"]["lensforge/job_id"]] = shared.bob
    for job_id, tenant in made.items():
        assert asyncio.run(store.get(job_id)).owner == tenant.key_id


@pytest.fixture
def artist(tmp_path: Path) -> Iterator[Secure]:
    yield from open_secure(make_settings(tmp_path), plugins=[*PLUGINS, Artist])


def test_the_images_a_tool_produces_are_readable_by_its_caller_only(artist: Secure) -> None:
    client, alice, bob = artist.client, artist.alice, artist.bob
    response = client.post(
        "/v1/analyze",
        json={"plugin": "artist", "tool": "tint", "inputs": {"image": b64(png(8, 6))}},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    digest = response.json()["result"]["blob"].removeprefix("sha256:")
    assert client.get(f"/v1/blobs/{digest}", headers=alice.headers).status_code == 200
    assert_envelope(client.get(f"/v1/blobs/{digest}", headers=bob.headers), 404)


def test_a_result_naming_a_blob_does_not_make_it_the_callers(artist: Secure) -> None:
    """Only what the tool produced becomes the caller's: a result that merely names another
    tenant's blob (a buggy or hostile plugin) gives no access to it."""
    client, alice, bob = artist.client, artist.alice, artist.bob
    digest = upload_png(client, alice, 12, 9)
    response = client.post(
        "/v1/analyze",
        json={"plugin": "artist", "tool": "name_blob", "inputs": {"digest": digest}},
        headers=bob.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["copy"]["blob"] == f"sha256:{digest}"
    assert_envelope(client.get(f"/v1/blobs/{digest}", headers=bob.headers), 404)
