"""The front end's SASL pieces on their own: the ApiVersions answer admits the SASL APIs whether or
not the broker behind lists them."""

from __future__ import annotations

import pytest
from kafka.protocol.metadata import ApiVersionsResponse

from streamcache_local.kafka_sasl import SASL_AUTHENTICATE, SASL_HANDSHAKE, SaslServer, admit_sasl_apis


def _answer(keys: list[tuple[int, int, int]], version: int) -> bytes:
    response = ApiVersionsResponse(error_code=0, throttle_time_ms=0, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, lo, hi in keys])
    response.API_VERSION = version
    response.with_header(correlation_id=7)
    return response.encode(header=True, framed=True)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_the_api_versions_answer_admits_the_sasl_apis(version):
    changed = admit_sasl_apis(_answer([(0, 0, 9), (1, 0, 12)], version), version)
    decoded = ApiVersionsResponse.decode(changed[4:], version=version, header=True)
    assert decoded.header.correlation_id == 7
    assert {(e.api_key, e.max_version) for e in decoded.api_keys} == {
        (0, 9), (1, 12), (SASL_HANDSHAKE, 1), (SASL_AUTHENTICATE, 2)}


def test_an_answer_that_lists_them_passes_unchanged():
    frame = _answer([(0, 0, 9), (SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 2)], 3)
    assert admit_sasl_apis(frame, 3) is frame


def test_an_unknown_mechanism_is_refused_when_the_front_end_starts():
    with pytest.raises(ValueError, match="PLAIN"):
        SaslServer("GSSAPI", "u", "p")
