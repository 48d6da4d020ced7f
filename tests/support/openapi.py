"""Checks HTTP answers against the OpenAPI document of the cache API (functions/cache/openapi.yaml).

:func:`check_against_openapi` fails unless the answer is one the document declares for the
request: the status is listed for the operation, declared headers are present (when required) and
match their schema, a JSON body matches the declared schema, and there is no body where none is
declared (never on HEAD). Methods and paths the document does not list must get its
``MethodNotAllowed`` (with an ``Allow`` naming exactly the listed methods) and ``NoRoute`` answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema
import orjson
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "functions" / "cache" / "openapi.yaml"
SPEC: dict = yaml.safe_load(SPEC_PATH.read_text())
_SPEC_URI = "urn:streamcache:openapi"
# The whole document is one schema resource, so "#/components/..." refs resolve inside it.
_REGISTRY = Registry().with_resource(_SPEC_URI, DRAFT202012.create_resource(SPEC))
_JSON_MEDIA = re.compile(r"^application/(.+\+)?json$")
_METHODS = ("get", "head", "put", "post", "delete", "patch", "options", "trace")


def check_against_openapi(method: str, url: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Fail (AssertionError) unless this answer to ``method url`` is one the document declares."""
    parts = urlsplit(url)
    method = method.lower()
    template = _template_for(parts.path)
    code = str(status)
    headers = {name.lower(): value for name, value in headers.items()}
    if code == "400" and _malformed_url(parts):
        # The document's rule: a URL that does not decode is 400 on any path and with any method.
        declared, pointer = _component("BadRequest")
    elif template is None:
        declared, pointer = _component("NoRoute")
        assert code == "404", f"{url}: no such path in the document, answered {code}"
    elif method not in SPEC["paths"][template]:
        declared, pointer = _component("MethodNotAllowed")
        assert code == "405", f"{method.upper()} {template} is not in the document, answered {code}"
        listed = {m.upper() for m in SPEC["paths"][template] if m in _METHODS}
        assert set(headers.get("allow", "").split(", ")) == listed, f"Allow {headers.get('allow')!r}, document: {listed}"
    else:
        responses = SPEC["paths"][template][method]["responses"]
        assert code in responses, f"{method.upper()} {template}: status {code} is not declared"
        declared, pointer = _resolve(responses[code], f"/paths/{_escape(template)}/{method}/responses/{code}")
    _check_headers(declared, pointer, code, headers)
    content = declared.get("content")
    if method == "head" or not content:
        assert body == b"", f"{method.upper()} {code}: the document declares no body, got {body[:80]!r}"
        return
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    candidate = next((c for c in (media, media.split("/")[0] + "/*", "*/*") if c in content), None)
    assert candidate, f"{code} answer of type {media!r}; the document declares {list(content)}"
    schema = content[candidate].get("schema")
    if schema and _JSON_MEDIA.match(media):  # an empty schema ({}) is "any bytes": nothing to parse
        errors = _schema_errors(orjson.loads(body), f"{pointer}/content/{_escape(candidate)}/schema")
        assert not errors, f"{code} body {body[:200]!r} does not match the document: {errors}"


def _check_headers(declared: dict, pointer: str, code: str, headers: dict[str, str]) -> None:
    for name, header in declared.get("headers", {}).items():
        header, header_pointer = _resolve(header, f"{pointer}/headers/{_escape(name)}")
        value = headers.get(name.lower())
        if header.get("required"):
            assert value is not None, f"{code} answer without its required {name} header"
        if value is not None:
            assert not _schema_errors(value, f"{header_pointer}/schema"), f"{name}: {value!r} does not match the document"


def _template_for(path: str) -> str | None:
    for template in SPEC["paths"]:
        if "{" in template:
            pattern = re.sub(r"\\\{\w+\\\}", "(.+)", re.escape(template))
        else:
            pattern = re.escape(template) + "/?"  # the collection answers with or without a slash
        if re.fullmatch(pattern, path):
            return template
    return None


def _malformed_url(parts) -> bool:
    """True when the URL does not decode: a query string that is not UTF-8 or repeats a parameter,
    or a path that is not UTF-8 once percent-decoded."""
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, errors="strict")
        unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        return True
    names = [name for name, _ in pairs]
    return len(names) != len(set(names))


def _component(name: str) -> tuple[dict, str]:
    return _resolve({"$ref": f"#/components/responses/{name}"}, "")


def _resolve(node: dict, pointer: str) -> tuple[dict, str]:
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = SPEC
        for part in pointer.lstrip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _schema_errors(instance, pointer: str) -> list[str]:
    validator = jsonschema.Draft202012Validator({"$ref": f"{_SPEC_URI}#{pointer}"}, registry=_REGISTRY)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
