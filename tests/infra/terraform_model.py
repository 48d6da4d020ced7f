"""The Terraform configuration in ``infra/terraform`` as data, for tests that check its wiring without
an OCI account: parsed with python-hcl2, with just enough evaluation to render the functions' config
maps, expand the gateway's routes and check the layout ``terraform fmt`` would produce.

Expressions arrive from python-hcl2 as ``"${...}"`` strings. :func:`render` replaces each
interpolation with a value derived from the configuration itself (a variable's default or the
example tfvars, a local, a resource's attribute) or, for the few expressions it cannot evaluate,
from :data:`EXPRESSION_SAMPLES`; an unknown expression fails loudly instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "infra" / "terraform"
EXAMPLE_TFVARS = TF_DIR / "terraform.tfvars.example"

#: Values for expressions that are functions of provider data (known only after apply).
EXPRESSION_SAMPLES = {
    "coalesce(try(oci_streaming_stream_pool.this.kafka_settings[0].bootstrap_servers, null), "
    '"${oci_streaming_stream_pool.this.endpoint_fqdn}:9092")': "cell-1.streaming.eu-frankfurt-1.oci.oraclecloud.com:9092",
    "data.oci_objectstorage_namespace.this.namespace": "examplenamespace",
    "oci_functions_function.compactor.invoke_endpoint": "https://amaaaaaacompactor.eu-frankfurt-1.functions.oci.oraclecloud.com",
}
#: OCID resource types where they differ from the Terraform kind (a function's OCID is ocid1.fnfunc...).
_OCID_TYPES = {"oci_functions_function": "fnfunc", "oci_functions_application": "fnapp"}
_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
_INTERPOLATION = re.compile(r"\$\{((?:[^{}]|\{[^{}]*\})*)\}")
_TERNARY = re.compile(r'([a-z_.]+) (==|!=) "([^"]*)" \? ("[^"]*"|[a-z_.]+) : ("[^"]*"|[a-z_.]+)')
_RESOURCE_ATTRIBUTE = re.compile(r"^(oci_[a-z_]+)\.([a-z0-9_]+)\.([a-z_]+)$")


@dataclass
class TerraformConfig:
    """Every top-level block of the ``*.tf`` files, by kind; ``texts`` keeps each file's source."""

    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, object] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    tfvars: dict[str, object] = field(default_factory=dict)

    def resource(self, kind: str, name: str) -> dict:
        return self.resources[(kind, name)]

    def variable_value(self, name: str) -> object:
        """The example tfvars' value, else the default."""
        if name in self.tfvars:
            return self.tfvars[name]
        if "default" not in self.variables[name]:
            raise KeyError(f"variable {name!r} has no default and is not in {EXAMPLE_TFVARS.name}")
        return self.variables[name]["default"]


def load(directory: Path = TF_DIR) -> TerraformConfig:
    config = TerraformConfig()
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        config.texts[path.name] = text
        parsed = hcl2.loads(text, serialization_options=_OPTIONS)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    config.resources[(kind, name)] = body
        for block in parsed.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    config.data[(kind, name)] = body
        for block in parsed.get("variable", []):
            config.variables.update(block)
        for block in parsed.get("locals", []):
            config.locals.update(block)
        for block in parsed.get("output", []):
            config.outputs.update(block)
    config.tfvars = hcl2.loads(EXAMPLE_TFVARS.read_text(), serialization_options=_OPTIONS)
    return config


def expression(value: object) -> str | None:
    """The expression inside a whole-value interpolation ``"${...}"``, else None."""
    if isinstance(value, str):
        match = _INTERPOLATION.fullmatch(value)
        if match:
            return match.group(1)
    return None


def render(config: TerraformConfig, value: object, depth: int = 0) -> str:
    """A string value with every interpolation replaced by a plausible deployed value."""
    if depth > 20:
        raise RecursionError(f"cannot render {value!r}: references loop")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot render {value!r}")
    return _INTERPOLATION.sub(lambda m: _evaluate(config, m.group(1).strip(), depth + 1), value)


def _evaluate(config: TerraformConfig, text: str, depth: int) -> str:
    if text in EXPRESSION_SAMPLES:
        return EXPRESSION_SAMPLES[text]
    ternary = _TERNARY.fullmatch(text)
    if ternary:  # REF ==/!= "LITERAL" ? A : B, with A and B references or quoted templates
        left, operator, literal, when_true, when_false = ternary.groups()
        holds = (_evaluate(config, left, depth) == literal) == (operator == "==")
        chosen = (when_true if holds else when_false).strip()
        return render(config, chosen[1:-1], depth) if chosen.startswith('"') else _evaluate(config, chosen, depth)
    if text.startswith("tostring(") and text.endswith(")"):
        return _evaluate(config, text[len("tostring("):-1], depth)
    if text.startswith("var."):
        return render(config, config.variable_value(text[4:]), depth)
    if text.startswith("local."):
        return render(config, config.locals[text[6:]], depth)
    match = _RESOURCE_ATTRIBUTE.match(text)
    if match:
        kind, name, attribute = match.groups()
        body = config.resource(kind, name)
        if attribute == "id":
            ocid_type = _OCID_TYPES.get(kind, kind.removeprefix("oci_").replace("_", ""))
            return f"ocid1.{ocid_type}.oc1.eu-frankfurt-1.amaaaaaa{name}"
        if attribute in body:
            return render(config, body[attribute], depth)
    if text.startswith('join("/", compact([') and text.endswith("]))"):  # the non-empty parts, joined
        parts = [p.strip() for p in text[len('join("/", compact(['):-3].split(",") if p.strip()]
        return "/".join(v for v in (_evaluate(config, p, depth) for p in parts) if v)
    raise KeyError(f"no way to render ${{{text}}}: add it to EXPRESSION_SAMPLES")


def merge_arguments(config: TerraformConfig, local_name: str) -> list[str]:
    """The arguments of ``merge(...)`` in the local ``local_name``, in order."""
    text = expression(config.locals[local_name])
    assert text and text.startswith("merge(") and text.endswith(")"), f"local.{local_name} is not a merge(): {text}"
    return [part.strip() for part in text[len("merge("):-1].split(",")]


def rendered_map(config: TerraformConfig, local_name: str) -> tuple[dict[str, str], list[str]]:
    """A config map built by ``merge()`` of locals and variables: the literal locals' keys rendered
    (in merge order, later wins), and the names of the variable maps merged in (user extras)."""
    settings: dict[str, str] = {}
    extras = []
    for argument in merge_arguments(config, local_name):
        if argument.startswith("var."):
            extras.append(argument[4:])
            continue
        assert argument.startswith("local."), f"merge argument {argument!r} is neither a local nor a variable"
        literal = config.locals[argument[6:]]
        assert isinstance(literal, dict), f"{argument} is not a literal map"
        settings.update({key: render(config, value) for key, value in literal.items()})
    return settings, extras


def routes(config: TerraformConfig, deployment: dict) -> list[dict]:
    """The deployment's routes, ``dynamic "routes"`` blocks expanded over their literal local map."""
    spec = deployment["specification"][0]
    expanded = list(spec.get("routes", []))
    for dynamic in spec.get("dynamic", []):
        block = dynamic.get("routes")
        if block is None:
            continue
        source = expression(block["for_each"])
        assert source and source.startswith("local."), f"routes for_each {block['for_each']!r} is not a local"
        content = block["content"][0]
        for key, value in config.locals[source[6:]].items():
            route = dict(content)
            route["path"] = key if content["path"] == "${routes.key}" else content["path"]
            route["methods"] = value if content["methods"] == "${routes.value}" else content["methods"]
            expanded.append(route)
    return expanded


# ---- the layout `terraform fmt` produces (checked here when no terraform binary is installed) -------

_ATTRIBUTE = re.compile(r"^( *)([A-Za-z_][A-Za-z0-9_-]*)( *)= ")


def layout_problems(text: str, name: str) -> list[str]:
    """Differences from ``terraform fmt``'s layout that matter for review: tabs, trailing blanks, the
    final newline, block bodies indented by two spaces per level, and ``=`` aligned across runs of
    one-line attributes (a comment, blank line, block or multi-line value ends a run)."""
    problems = []
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append(f"{name}: must end with exactly one newline")
    stack: list[str] = []  # "block" or "expr" per open bracket
    run: list[tuple[int, re.Match]] = []

    def close_run() -> None:
        if len({m.end(3) for _, m in run}) > 1:
            problems.append(f"{name}:{run[0][0]}: '=' not aligned in lines {run[0][0]}-{run[-1][0]}")
        elif run and min(len(m.group(3)) for _, m in run) != 1:
            problems.append(f"{name}:{run[0][0]}: one space expected before the longest name's '='")
        run.clear()

    for number, line in enumerate(text.split("\n"), start=1):
        if "\t" in line:
            problems.append(f"{name}:{number}: tab")
        if line != line.rstrip():
            problems.append(f"{name}:{number}: trailing whitespace")
        code = _code_part(line)
        in_body = all(kind == "block" for kind in stack)
        depth = len(stack) - (1 if code.strip()[:1] in ("}", "]", ")") else 0)
        if in_body and code.strip() and len(line) - len(line.lstrip(" ")) != 2 * depth:
            problems.append(f"{name}:{number}: indented {len(line) - len(line.lstrip(' '))}, expected {2 * depth}")
        opened = _bracket_delta(code)
        match = _ATTRIBUTE.match(line)
        if in_body and match and opened == 0 and code.strip():
            run.append((number, match))
        else:
            close_run()
        for char, kind in _brackets(code, attribute=bool(match)):
            if char in "{[(":
                stack.append(kind)
            elif stack:
                stack.pop()
    close_run()
    return problems


def _code_part(line: str) -> str:
    """The line without string contents and comments (brackets inside strings do not count)."""
    out, quoted, i = [], False, 0
    while i < len(line):
        char = line[i]
        if quoted:
            if char == "\\":
                i += 2
                continue
            if char == '"':
                quoted = False
                out.append(char)
        elif char == '"':
            quoted = True
            out.append(char)
        elif char == "#" or line.startswith("//", i):
            break
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _brackets(code: str, attribute: bool) -> list[tuple[str, str]]:
    # A bracket opened on an attribute line (after '=') or inside an expression is an expression.
    kind = "expr" if attribute else "block"
    return [(char, "expr" if char != "{" or attribute else kind) for char in code if char in "{[()]}"]


def _bracket_delta(code: str) -> int:
    return sum(1 for c in code if c in "{[(") - sum(1 for c in code if c in ")]}")
