"""The frame both wire codecs share (`sgweb.firewall.docframe`): one text whoever writes it, its
digest, omissions only at the default, and refusals that name the document."""

from __future__ import annotations

import dataclasses

import pytest

from sgweb.firewall import codec, docframe
from sgweb.firewall.fwaas import codec as fwaas_codec
from sgweb.firewall.model import HostState, LogSettings, Port


@dataclasses.dataclass(frozen=True)
class Inner:
    name: str
    tag: str | None = None


@dataclasses.dataclass(frozen=True)
class Outer:
    items: tuple[Inner, ...] = ()
    tag: str | None = None


def test_the_canonical_text_sorts_keys_drops_spaces_escapes_non_ascii_and_keeps_tuple_order():
    data = docframe.encode(Outer(items=(Inner("z"), Inner("é"))))
    assert docframe.canonical_text(data) == (
        '{"items":[{"name":"z","tag":null},{"name":"\\u00e9","tag":null}],"tag":null}'
    )


def test_a_field_named_to_omit_is_left_out_only_while_it_holds_its_default_at_any_depth():
    outer = Outer(items=(Inner("a"), Inner("b", tag="x")))
    assert docframe.encode(outer, frozenset({"tag"})) == {
        "items": [{"name": "a"}, {"name": "b", "tag": "x"}]
    }


def test_the_digest_is_the_sha256_of_the_utf8_text():
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert docframe.digest("") == empty
    assert codec.digest is docframe.digest and fwaas_codec.digest is docframe.digest


def test_a_host_without_packet_logging_writes_no_log_fields():
    plain = HostState(ports=(Port("p1", "fa:16:3e:00:00:01"),))
    assert '"log_' not in codec.dumps(plain)
    logged = dataclasses.replace(plain, log_settings=LogSettings(rate=5))
    assert '"log_settings":{' in codec.dumps(logged)
    assert codec.loads(codec.dumps(logged)) == logged


@pytest.mark.parametrize(
    ("module", "what"), [(codec, "host state"), (fwaas_codec, "network node state")]
)
def test_each_codec_refuses_what_is_not_its_document_in_its_own_words(module, what):
    refusals = {
        "{": f"{what} is not JSON",
        "[]": f"a {what} document must be a JSON object",
        '{"format": 2}': f"{what} format 2 is not 1",
    }
    for text, message in refusals.items():
        with pytest.raises(module.CodecError, match=message):
            module.loads(text)
