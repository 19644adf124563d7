"""The manifest's wire format (issue 15: bytes per change): what is stored, read and refused."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from sgweb.firewall import codec, docframe, manifest
from sgweb.wire import sync as protocol
from tests.agents.fakes import rule, state
from worker.store import PieceCache, assemble_desired

pytestmark = [pytest.mark.redis]


def remote_state():
    """The fake host whose web group admits db's members: a state with every kind of piece."""
    return state(web_rules=(rule("i-db", protocol="tcp", remote_group_id="db"),))


def stored_pieces(channel, m: manifest.Manifest) -> None:
    for p in m.pieces:
        channel.redis.set(protocol.shared_key(channel.prefix, p.kind, p.hash), p.text)


def test_the_document_the_store_script_writes_is_the_one_desired_document_writes(
    sync_channel,
) -> None:
    m = manifest.split(remote_state())
    keys = sync_channel.keys("compute1")
    now = time.time()
    args = protocol.store_manifest_args(5, m.digest, m.text, now, int(now) - 7, force=False)
    stored = sync_channel.redis.eval(
        protocol.STORE_MANIFEST_LUA, 3, keys.desired, keys.desired_revision,
        keys.desired_digest, *args,
    )  # fmt: skip
    assert stored == 1
    document = sync_channel.redis.get(keys.desired).decode()
    assert document == protocol.desired_document(5, m.digest, m.text, now, int(now) - 7)
    parsed = protocol.parse_desired(document)
    assert (parsed.revision, parsed.digest, parsed.refreshed_at) == (5, m.digest, int(now) - 7)
    assert sync_channel.redis.get(keys.desired_digest).decode() == m.digest


def test_the_store_script_keeps_a_newer_revision_and_an_unchanged_state(sync_channel) -> None:
    m = manifest.split(remote_state())
    keys = sync_channel.keys("compute1")

    def store(revision: int, force: bool = False) -> int:
        args = protocol.store_manifest_args(revision, m.digest, m.text, 0.0, 0, force=force)
        return int(
            sync_channel.redis.eval(
                protocol.STORE_MANIFEST_LUA, 3, keys.desired, keys.desired_revision,
                keys.desired_digest, *args,
            )
        )  # fmt: skip

    assert store(7) == 1
    assert store(6) == 0 and store(7) == 0  # older or equal: dropped
    assert store(8) == -1  # same digest: nothing new
    assert store(8, force=True) == 1


def test_a_digest_that_is_not_hex_never_reaches_the_stored_json() -> None:
    with pytest.raises(ValueError, match="sha256 hex"):
        protocol.store_manifest_args(1, 'x","revision":99', "{}", 0.0, 0, force=False)


def test_a_manifest_names_its_pieces_by_short_ids_and_shares_the_settings() -> None:
    m = manifest.split(remote_state())
    data = json.loads(m.text)
    assert data["format"] == manifest.MANIFEST_FORMAT and data["host"] == "compute1"
    assert all(len(p.hash) == 32 for p in m.pieces)
    elsewhere = manifest.split(dataclasses.replace(remote_state(), host="compute2"))
    assert elsewhere.settings.hash == m.settings.hash and elsewhere.digest != m.digest
    assert "chain_prefix" not in m.text and "db" not in data["groups"]


def test_an_agent_assembles_exactly_the_split_state(sync_channel) -> None:
    original = remote_state()
    m = manifest.split(original)
    stored_pieces(sync_channel, m)
    desired = protocol.parse_desired(protocol.desired_document(3, m.digest, m.text, 0.0, 0))
    cache = PieceCache()
    got = assemble_desired(desired, sync_channel.redis, sync_channel.prefix, cache)
    assert got.assembled == original and cache.fetched == len(m.pieces)


def test_a_manifest_an_older_publisher_wrote_is_still_read(sync_channel) -> None:
    """Format 2 (sha256 hex refs, the settings inline, group ids beside the hashes): what a
    stored document or an agent's applied state from before holds."""
    original = remote_state()

    def stored_by_hex(kind: str, data: object) -> str:
        text = docframe.canonical_text(data)
        sync_channel.redis.set(
            protocol.shared_key(sync_channel.prefix, kind, codec.digest(text)), text
        )
        return codec.digest(text)

    old = {
        "format": manifest.OLD_MANIFEST_FORMAT,
        "state": manifest.scalars(original),
        "ports": stored_by_hex("ports", [codec._encode(port) for port in original.ports]),
        "uses": manifest.uses(original.ports),
        "security_groups": [
            [g.id, stored_by_hex("sg", codec._encode(g))] for g in original.security_groups
        ],
        "remote_group_members": [
            [gid, stored_by_hex("members", [gid, list(addresses)])]
            for gid, addresses in original.remote_group_members
        ],
    }
    text = docframe.canonical_text(old)
    desired = protocol.parse_desired(protocol.desired_document(3, codec.digest(text), text, 0.0))
    got = assemble_desired(desired, sync_channel.redis, sync_channel.prefix, PieceCache())
    assert got.assembled == original


def test_a_piece_whose_text_is_not_the_one_its_id_names_is_refused(sync_channel) -> None:
    m = manifest.split(remote_state())
    stored_pieces(sync_channel, m)
    group_key = protocol.shared_key(sync_channel.prefix, "sg", m.groups[0][1].hash)
    sync_channel.redis.set(group_key, m.groups[0][1].text.replace("egress", "ingress"))
    desired = protocol.parse_desired(protocol.desired_document(3, m.digest, m.text, 0.0, 0))
    with pytest.raises(codec.CodecError, match="does not match its id"):
        assemble_desired(desired, sync_channel.redis, sync_channel.prefix, PieceCache())
