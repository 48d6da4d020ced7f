"""The OCI deployment (infra/terraform) checked without an OCI account: the functions' config maps
build real Settings, the gateway routes reach the cache function and agree with its router, the
schedule and the Events rule (the one in events/) target the compactor, the policies grant what the
adapters call, every input is described and validated, and the files are laid out as terraform fmt
writes them. Where a `terraform` binary is installed, it also runs `fmt -check` and the variable
validations; without one, the same tests check what python-hcl2 can see instead (never skipped)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import terraform_model as tf
import yaml

from streamcache.adapters.oci_secrets import SECRET_SETTINGS, with_secrets
from streamcache.cache.app import build_from_env
from streamcache.core.snapshot_names import stream_prefix
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings

RULE_FILE = tf.REPO / "events" / "object-storage" / "import-rule.json"
TERRAFORM = shutil.which("terraform")
VERBS = ["inspect", "read", "use", "manage"]
#: What each Object Storage / Vault SDK call needs (OCI policy reference; PutObject needs OBJECT_CREATE).
OPERATION_NEEDS = {
    "get_object": ("objects", "read"), "head_object": ("objects", "inspect"),
    "list_objects": ("objects", "inspect"), "put_object": ("objects", "manage"),
    "delete_object": ("objects", "manage"), "get_secret_bundle": ("secret-bundles", "read"),
    # Multipart uploads (the compactor's big images): OBJECT_CREATE, and OBJECT_DELETE to abort.
    "create_multipart_upload": ("objects", "manage"), "upload_part": ("objects", "manage"),
    "commit_multipart_upload": ("objects", "manage"), "abort_multipart_upload": ("objects", "manage"),
    "invoke_function": ("fn-invocation", "use"), "post_metric_data": ("metrics", "use"),
}
#: The cache function restores (reads), writes big values (values/ only) and, after a long tail, asks
#: the compactor for a compaction; the compactor writes and prunes, and invokes nothing.
CACHE_OPERATIONS = {"get_object", "head_object", "list_objects", "get_secret_bundle", "invoke_function",
                    "post_metric_data", "put_object"}
COMPACTOR_OPERATIONS = set(OPERATION_NEEDS) - {"invoke_function"}
#: The condition each resource's grant must carry: never a whole compartment's objects or functions.
GRANT_CONDITIONS = {"secret-bundles": "target.secret.id = '${var.kafka_auth_token_secret_ocid}'",
                    "objects": "${local.bucket_only}", "fn-invocation": "${local.compactor_only}",
                    "metrics": "${local.metrics_only}"}
_STATEMENT = re.compile(r"^Allow (dynamic-group|group|any-user|service) ?(\S*) to (inspect|read|use|manage) "
                        r"(\S+) in (compartment id \S+|\$\{local\.compartment\}|tenancy)(?: where (.+))?$")


@pytest.fixture(scope="module")
def config() -> tf.TerraformConfig:
    return tf.load()


def settings_from(config_map: dict[str, str]) -> Settings:
    """What a function instance builds from this config: the token comes from Vault at start."""
    return Settings.from_env(with_secrets(config_map, read=lambda secret_id: "auth-token-from-vault"))


@pytest.mark.parametrize("function", ["cache", "compactor"])
def test_each_function_config_builds_its_settings(config, function):
    config_map, extras = tf.rendered_map(config, f"{function}_config")
    assert extras == [f"{function}_extra_settings"]
    assert tf.merge_arguments(config, f"{function}_config")[0] == f"var.{function}_extra_settings"  # ours win

    settings = settings_from(config_map)  # raises ConfigError naming anything missing or invalid

    known = set(Settings.env_names()) | set(SECRET_SETTINGS)
    assert set(config_map) <= known, f"not settings: {set(config_map) - known}"
    assert "STREAMCACHE_KAFKA_SASL_PASSWORD" not in config_map  # only the secret's OCID travels in config
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_password == "auth-token-from-vault"
    assert settings.snapshot_url.startswith("oci://") and settings.stream_id.startswith("ocid1.")
    # The quota decides outcomes: the compactor folds with the very value the instances apply.
    assert settings.max_bytes == config.variable_value("max_bytes") > 0
    if function == "compactor":
        assert settings.snapshots_keep == config.variable_value("snapshots_keep")
        assert settings.snapshots_keep_all_hours == config.variable_value("snapshots_keep_all_hours")
        assert settings.snapshots_daily_days == config.variable_value("snapshots_daily_days")
        assert settings.import_prefix == config.variable_value("import_prefix")
        assert not settings.compactor_function_id  # the compactor asks nobody for a compaction
    else:  # after a long tail at cold start, the cache asks the compactor (a detached invoke)
        assert settings.compact_after_records == config.variable_value("compact_after_records")
        assert config.locals["cache_only_settings"]["STREAMCACHE_COMPACTOR_FUNCTION_ID"] == \
            "${oci_functions_function.compactor.id}"
        assert config.locals["cache_only_settings"]["STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT"] == \
            "${oci_functions_function.compactor.invoke_endpoint}"
        assert settings.compactor_function_id.startswith("ocid1.fnfunc.")
        assert settings.compactor_invoke_endpoint.startswith("https://")


def test_the_cache_router_answers_the_paths_the_gateway_forwards(config):
    deployment = config.resource("oci_apigateway_deployment", "this")
    prefix = tf.render(config, deployment["path_prefix"])
    route_prefix = tf.rendered_map(config, "cache_config")[0]["STREAMCACHE_ROUTE_PREFIX"]
    # The function receives the path with the deployment's prefix (Fn-Http-Request-Url is e.g. "/v1/http-info").
    app = build_from_env({"STREAMCACHE_LOG_URL": "memory://wiring-routes", "STREAMCACHE_ROUTE_PREFIX": route_prefix})

    assert app.handle(HttpRequest("PUT", f"{prefix}/cache/a/b%2Fc", {}, b"v")).status in (200, 201)
    assert app.handle(HttpRequest("GET", f"{prefix}/cache/a/b%2Fc", {}, b"")).body == b"v"
    assert app.handle(HttpRequest("GET", f"{prefix}/health", {}, b"")).status == 200
    assert tf.render(config, config.resource("oci_health_checks_http_monitor", "health")["path"]) == f"{prefix}/health"


def test_gateway_routes_reach_the_cache_function(config):
    routes = {route["path"]: route for route in tf.routes(config, config.resource("oci_apigateway_deployment", "this"))}

    for route in routes.values():
        assert route["backend"] == [{"type": "ORACLE_FUNCTIONS_BACKEND", "function_id": "${oci_functions_function.cache.id}"}]
    # Every operation of the OpenAPI document has its route and method; nothing else is open.
    openapi = yaml.safe_load((tf.REPO / "functions" / "cache" / "openapi.yaml").read_text())
    verbs = {"get", "head", "put", "post", "delete", "patch", "options"}
    documented = {path.replace("{key}", "{key*}"): {m.upper() for m in ops if m in verbs}
                  for path, ops in openapi["paths"].items()}
    assert {path: set(route["methods"]) for path, route in routes.items()} == documented


def test_with_authentication_only_health_stays_anonymous(config):
    spec = config.resource("oci_apigateway_deployment", "this")["specification"][0]
    authentications = [d["authentication"] for d in spec["request_policies"][0]["dynamic"] if "authentication" in d]
    assert {a["content"][0]["type"] for a in authentications} == {"JWT_AUTHENTICATION", "CUSTOM_AUTHENTICATION"}
    assert all(a["content"][0]["is_anonymous_access_allowed"] is True for a in authentications)

    def authorization(route: dict) -> str:
        return route["dynamic"][0]["request_policies"]["content"][0]["authorization"][0]["type"]

    routes = {route["path"]: route for route in tf.routes(config, config.resource("oci_apigateway_deployment", "this"))}
    assert authorization(routes["/health"]) == "ANONYMOUS"  # Health Checks cannot send Authorization
    assert authorization(routes["/console"]) == authorization(routes["/console/{asset}"]) == "ANONYMOUS"
    assert authorization(routes["/changes"]) == "AUTHENTICATION_ONLY"
    assert authorization(routes["/cache"]) == authorization(routes["/cache/{key*}"]) == "AUTHENTICATION_ONLY"


def test_the_schedule_invokes_the_compactor(config):
    schedule = config.resource("oci_resource_scheduler_schedule", "compaction")
    assert schedule["resources"] == [{"id": "${oci_functions_function.compactor.id}"}]
    assert schedule["recurrence_type"] == "CRON"
    assert "var.compactor_schedule_cron" in schedule["recurrence_details"]


def test_the_events_rule_is_the_one_in_events_dir(config):
    loaded = tf.expression(config.locals["import_rule"])
    match = re.fullmatch(r'jsondecode\(templatefile\("\$\{path\.module\}/([^"]+)", \{(.*)\}\)\)', loaded)
    assert match, loaded
    assert (tf.TF_DIR / match.group(1)).resolve() == RULE_FILE
    passed = {part.split("=")[0].strip() for part in match.group(2).split(",")}
    placeholders = {m.group(1) for m in re.finditer(r"\$\{(\w+)\}", RULE_FILE.read_text())}
    assert placeholders <= passed == {"bucket_name", "import_prefix"}  # templatefile fails on an unknown name

    rule = config.resource("oci_events_rule", "imports")
    assert rule["condition"] == "${jsonencode(local.import_rule.condition)}"
    assert (rule["description"], rule["is_enabled"]) == ("${local.import_rule.description}", "${local.import_rule.is_enabled}")
    dynamic = rule["actions"][0]["dynamic"][0]["actions"]
    assert dynamic["for_each"] == "${local.import_rule.actions}"
    assert dynamic["content"][0]["function_id"] == "${local.rule_functions[actions.value.function]}"
    assert dynamic["content"][0]["action_type"] == "${actions.value.action_type}"
    actions = json.loads(RULE_FILE.read_text())["actions"]
    assert actions and all(a["action_type"] == "FAAS" and a["function"] == "compactor" for a in actions)
    assert config.locals["rule_functions"] == {"compactor": "${oci_functions_function.compactor.id}"}
    assert config.resource("oci_objectstorage_bucket", "data")["object_events_enabled"] is True


def rendered_rule(config) -> dict:
    values = {"bucket_name": tf.render(config, "${local.bucket_name}"), "import_prefix": config.variable_value("import_prefix")}
    # templatefile() replaces ${name}; nothing else in the file is special ("$comment" is not).
    return json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], RULE_FILE.read_text()))


def matches(condition: object, event: object) -> bool:
    """OCI Events filter semantics: unnamed fields are ignored, nesting mirrors the event, a list is
    any-of, and '*' is a wildcard."""
    if isinstance(condition, dict):
        return isinstance(event, dict) and all(k in event and matches(v, event[k]) for k, v in condition.items())
    if isinstance(condition, list):
        return any(matches(option, event) for option in condition)
    pattern = "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", str(condition)))
    return isinstance(event, str) and re.fullmatch(pattern, event) is not None


def object_event(event_type: str, bucket: str, name: str) -> dict:
    return {"eventType": f"com.oraclecloud.objectstorage.{event_type}", "cloudEventsVersion": "0.1",
            "source": "ObjectStorage", "data": {"resourceName": name, "resourceId": f"/n/ns/b/{bucket}/o/{name}",
                                                "additionalDetails": {"bucketName": bucket, "namespace": "ns"}}}


def test_the_import_rule_matches_imports_and_never_the_compactors_own_writes(config):
    condition = rendered_rule(config)["condition"]
    bucket = tf.render(config, "${local.bucket_name}")
    snapshot = tf.render(config, "${local.snapshot_objects_prefix}") + stream_prefix("ocid1.stream.oc1..x")[len("snapshots/"):]
    marker = tf.render(config, "${local.import_markers_prefix}") + "3e47d127.json"

    assert matches(condition, object_event("createobject", bucket, "imports/2026/batch-1.jsonl"))
    for written in (snapshot + "0000-0001-w.snap", marker):
        for event_type in ("createobject", "updateobject", "deleteobject"):
            assert not matches(condition, object_event(event_type, bucket, written)), (event_type, written)
    assert not matches(condition, object_event("deleteobject", bucket, "imports/batch-1.jsonl"))
    assert not matches(condition, object_event("createobject", "someone-elses-bucket", "imports/batch-1.jsonl"))
    # The golden events of the import contract: the snapshot write never matches, a plain import does.
    examples = RULE_FILE.parent / "examples" / "valid"
    assert not matches(condition, json.loads((examples / "createobject-snapshot-write.json").read_text()))
    assert matches(condition, json.loads((examples / "createobject.json").read_text()))
    assert "!startswith(written, var.import_prefix)" in config.texts["events.tf"]


def statements(config) -> list[tuple[str, str]]:
    """(policy name, statement) for every policy, `for` comprehensions expanded."""
    found = []
    for (kind, name), body in config.resources.items():
        if kind != "oci_identity_policy":
            continue
        listed = body["statements"]
        comprehension = tf.expression(listed) if isinstance(listed, str) else None
        if comprehension:
            m = re.fullmatch(r'\[for (\w+) in \[(.*?)\] : "(.*)"\]', comprehension)
            assert m, comprehension
            listed = [m.group(3).replace("${%s}" % m.group(1), "${%s}" % item.strip()) for item in m.group(2).split(",")]
        found += [(name, statement) for statement in listed]
    return found


def grants(config) -> list[tuple[str, str, str, str, str]]:
    parsed = []
    for _, statement in statements(config):
        m = _STATEMENT.match(statement)
        assert m, f"unexpected policy statement form: {statement}"
        parsed.append(m.groups()[:4] + (m.group(6) or "",))
    return parsed


def sdk_operations() -> set[str]:
    adapters = tf.REPO / "functions" / "streamcache" / "adapters"
    return {op for path in adapters.glob("oci_*.py") for op in re.findall(r"(?:self\._client|client)\.([a-z_]+)\(", path.read_text())}


def condition(function: str, verb: str, resource: str) -> str:
    """The condition a grant must carry: the cache's one write (manage objects) is big values only."""
    if function == "cache" and resource == "objects" and verb == "manage":
        return "${local.values_only}"
    return GRANT_CONDITIONS[resource]


@pytest.mark.parametrize("function", ["cache", "compactor"])
def test_policies_cover_what_the_adapters_call(config, function):
    operations = sdk_operations()
    assert {"put_object", "get_object", "list_objects", "delete_object", "get_secret_bundle"} <= operations
    assert operations <= set(OPERATION_NEEDS), f"add the permission of {operations - set(OPERATION_NEEDS)}"
    group = "${oci_identity_dynamic_group.%s.name}" % function
    mine = [g for g in grants(config) if g[0] == "dynamic-group" and g[1] == group]
    needed = operations & (CACHE_OPERATIONS if function == "cache" else COMPACTOR_OPERATIONS)
    for operation in needed:
        resource, verb = OPERATION_NEEDS[operation]
        scoped = [g for g in mine if g[3] == resource and VERBS.index(g[2]) >= VERBS.index(verb)]
        assert scoped, f"{function} calls {operation}: needs `{verb} {resource}`"
        assert all(g[4] == condition(function, g[2], resource) for g in scoped), f"{function}'s {resource} grant is not scoped: {scoped}"
    granted = {g[3] for g in mine}
    assert granted == {OPERATION_NEEDS[operation][0] for operation in needed}, f"{function} is granted more than it calls"
    if function == "cache":  # least privilege: restoring never needs more than read; invoking and posting need use;
        # writing a big value needs manage, and has it only for creating objects under values/
        assert all(VERBS.index(g[2]) <= VERBS.index("use" if g[3] in ("fn-invocation", "metrics") else "read")
                   or g[4] == "${local.values_only}" for g in mine)
        values_only = config.locals["values_only"]
        assert values_only.startswith("all {${local.bucket_only}, target.object.name = '${local.values_objects_prefix}*', ")
        assert "OBJECT_CREATE" in values_only and "DELETE" not in values_only
    assert "target.bucket.name = '${oci_objectstorage_bucket.data.name}'" == config.locals["bucket_only"]
    assert "target.function.id = '${oci_functions_function.compactor.id}'" == config.locals["compactor_only"]
    assert "target.metrics.namespace = '${var.metrics_namespace}'" == config.locals["metrics_only"]


def test_the_streaming_user_may_produce_and_consume_this_stream_only(config):
    # Kafka authenticates the user of the SASL username (auth token), not the functions' resource principal.
    stream = [g for g in grants(config) if g[0] == "group" and g[1] == "${var.streaming_user_group}"]
    by_resource = {g[3]: g for g in stream}
    for resource in ("stream-push", "stream-pull"):
        assert by_resource[resource][2] == "use"
        assert by_resource[resource][4] == "target.stream.id = '${oci_streaming_stream.log.id}'"
    assert "var.streaming_user_name" in config.locals["kafka_username"]


def test_gateway_schedule_and_events_may_invoke_the_functions(config):
    invokers = [g for g in grants(config) if g[3] == "functions-family"]
    assert any(g[0] == "any-user" and "request.principal.type = 'ApiGateway'" in g[4] for g in invokers)
    assert any(g[0] == "any-user" and "request.principal.type = 'resourceschedule'" in g[4]
               and "${oci_resource_scheduler_schedule.compaction.id}" in g[4] for g in invokers)
    assert any(g[0] == "service" and g[1] == "cloudEvents" for g in invokers)
    assert all(g[4] for g in grants(config) if g[0] == "any-user"), "an any-user grant without a condition"


def test_dynamic_groups_match_exactly_the_two_functions_in_the_root_compartment(config):
    for function in ("cache", "compactor"):
        group = config.resource("oci_identity_dynamic_group", function)
        assert group["compartment_id"] == "${var.tenancy_ocid}" and group["provider"] == "${oci.home}"
        assert group["matching_rule"] == "ALL {resource.type = 'fnfunc', resource.id = '${oci_functions_function.%s.id}'}" % function
    assert all(body.get("provider") == "${oci.home}" for (kind, _), body in config.resources.items() if kind.startswith("oci_identity_"))


def test_the_stream_cannot_be_replaced_by_accident(config):
    stream = config.resource("oci_streaming_stream", "log")
    assert stream["lifecycle"][0]["prevent_destroy"] is True
    assert (stream["partitions"], stream["retention_in_hours"]) == ("${var.stream_partitions}", "${var.stream_retention_hours}")


@pytest.mark.parametrize("function", ["cache", "compactor"])
def test_function_sizes_agree_with_func_yaml(config, function):
    funcfile = yaml.safe_load((tf.REPO / "functions" / function / "func.yaml").read_text())
    body = config.resource("oci_functions_function", function)
    assert funcfile["memory"] == config.variable_value(tf.expression(body["memory_in_mbs"])[4:])
    assert funcfile["timeout"] == config.variable_value(tf.expression(body["timeout_in_seconds"])[4:])


def test_every_variable_is_described_and_used_and_every_reference_declared(config):
    text = "\n".join(config.texts.values())
    for name, variable in config.variables.items():
        assert variable.get("description", "").strip(), f"variable {name} has no description"
        assert f"var.{name}" in text, f"variable {name} is never used"
    assert set(re.findall(r"\bvar\.(\w+)", text)) <= set(config.variables)
    assert set(re.findall(r"\blocal\.(\w+)", text)) <= set(config.locals)
    declared = {f"{kind}.{name}" for kind, name in config.resources}
    referenced = set(re.findall(r"(?<![.\w])(oci_[a-z_]+\.[a-z0-9_]+)\.", text))
    assert referenced <= declared, referenced - declared
    data = {f"data.{kind}.{name}" for kind, name in config.data}
    assert set(re.findall(r"\b(data\.oci_[a-z_]+\.[a-z0-9_]+)", text)) <= data
    assert set(config.tfvars) <= set(config.variables)


#: Values each validation must refuse, and edge values it must accept.
BAD_VALUES = [
    ("stream_partitions", 0), ("stream_partitions", 1.5), ("stream_retention_hours", 23),
    ("stream_retention_hours", 169), ("health_check_interval_seconds", 15), ("cache_memory_mb", 300),
    ("compactor_memory_mb", 4096), ("cache_timeout_seconds", 301), ("compactor_timeout_seconds", 0),
    ("compactor_schedule_cron", "hourly"), ("compactor_schedule_cron", "0 * * *"), ("api_path_prefix", "/"),
    ("api_path_prefix", "/v1/"), ("import_prefix", "snapshots/x/"), ("import_prefix", "imports"),
    ("import_prefix", "import-markers/"),
    ("kafka_auth_token_secret_ocid", "ocid1.key.oc1..x"), ("cache_image", "cache:latest"),
    ("api_auth", "BASIC"), ("rate_limit_key", "USER"), ("log_retention_days", 45),
    ("cache_provisioned_concurrency", -10), ("snapshots_keep", 0), ("snapshots_keep_all_hours", -1), ("snapshots_daily_days", 1.5), ("compact_after_records", -1),
    ("compact_after_records", 0.5), ("name_prefix", "Stream_Cache"),
    ("compartment_ocid", "ocid1.tenancy.oc1..aaaa"),
    ("cache_extra_settings", {"STREAMCACHE_KAFKA_SASL_PASSWORD": "plain"}), ("cache_extra_settings", {"PATH": "/x"}),
]
GOOD_VALUES = [("stream_retention_hours", 24), ("stream_retention_hours", 168), ("health_check_interval_seconds", 10),
               ("compactor_schedule_cron", "*/30 * * * *"), ("api_path_prefix", "/api/v2"), ("identity_domain_name", ""),
               ("cache_extra_settings", {"STREAMCACHE_STALENESS_MS": "500"}), ("compact_after_records", 0)]


def test_variable_validations_refuse_bad_values_and_accept_edge_values(config, tmp_path):
    for name, _ in BAD_VALUES:
        conditions = [v["condition"] for v in config.variables[name].get("validation", [])]
        assert any(f"var.{name}" in c for c in conditions), f"variable {name} has no validation of its own value"
    numbers = [name for name, v in config.variables.items() if v.get("type") == "${number}"]
    assert all(config.variables[name].get("validation") for name in numbers), "every number variable needs a validation"
    if TERRAFORM is None:
        return  # without a binary the validations cannot be evaluated; the structure above is what we can check
    shutil.copy(tf.TF_DIR / "variables.tf", tmp_path / "variables.tf")  # alone: no provider to download
    lines = ["variables {"] + [f"  {k} = {json.dumps(v)}" for k, v in config.tfvars.items()] + ["}"]
    for number, (name, value) in enumerate(BAD_VALUES + GOOD_VALUES):
        expect = f"  expect_failures = [var.{name}]" if number < len(BAD_VALUES) else ""
        lines += [f'run "case_{number}_{name}" {{', "  command = plan", f"  variables {{ {name} = {json.dumps(value)} }}", expect, "}"]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "validations.tftest.hcl").write_text("\n".join(lines) + "\n")
    run = terraform(["init", "-input=false"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    run = terraform(["test"], tmp_path)
    assert run.returncode == 0 and f"{len(BAD_VALUES) + len(GOOD_VALUES)} passed, 0 failed" in run.stdout, run.stdout + run.stderr


def terraform(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    cli_config = cwd / ".terraformrc"
    cli_config.touch()
    env = {"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": str(cli_config), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run([TERRAFORM, *args, "-no-color"], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60)


def test_files_are_laid_out_as_terraform_fmt_writes_them(config, tmp_path):
    problems = [p for name, text in config.texts.items() for p in tf.layout_problems(text, name)]
    problems += tf.layout_problems(tf.EXAMPLE_TFVARS.read_text(), tf.EXAMPLE_TFVARS.name)
    assert problems == []
    if TERRAFORM is not None:  # the real check, where terraform is installed
        run = terraform(["fmt", "-check", "-recursive", "-diff", str(tf.TF_DIR)], tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        run = terraform(["fmt", "-"], tmp_path, stdin=tf.EXAMPLE_TFVARS.read_text())
        assert run.stdout == tf.EXAMPLE_TFVARS.read_text()


@pytest.mark.parametrize("snippet, problem", [
    ('x {\n  a = 1\n  bbb = 2\n}\n', "not aligned"),
    ('x {\n  a    = 1\n  bbb  = 2\n}\n', "one space"),
    ('x {\n    a = 1\n}\n', "indented 4, expected 2"),
    ('x {\n  a = 1 \n}\n', "trailing whitespace"),
    ('x {\n  a = 1\n}', "newline"),
])
def test_the_layout_check_finds_what_fmt_would_change(snippet, problem, tmp_path):
    assert any(problem in p for p in tf.layout_problems(snippet, "s.tf"))
    assert tf.layout_problems('x {\n  a = 1\n\n  bbb = {\n    c = "}"\n  }\n  dd = 2 # x\n  e  = [1]\n}\n', "ok.tf") == []
    if TERRAFORM is not None:  # and terraform agrees that each snippet needs formatting
        assert terraform(["fmt", "-"], tmp_path, stdin=snippet).stdout != snippet


def test_outputs_name_what_a_user_needs(config):
    for name in ("cache_url", "health_url", "stream_ocid", "kafka_bootstrap_servers", "bucket_name",
                 "cache_function_ocid", "compactor_function_ocid", "cache_invoke_endpoint", "compactor_invoke_endpoint"):
        assert config.outputs[name].get("description"), name
    assert config.outputs["cache_url"]["value"] == "${oci_apigateway_deployment.this.endpoint}/cache"


def test_each_alarm_is_the_template_rendered_and_notifies_the_topic(config):
    """The alarms are the one template's (the local evaluator reads the same file), each with a
    runbook section in infra/README.md, all notifying the ONS topic the alarm variables subscribe to."""
    from streamcache_local.alarms import TEMPLATE, evaluate, load_alarms

    alarm = config.resource("oci_monitoring_alarm", "streamcache")
    assert alarm["for_each"] == "${local.alarms}" and alarm["destinations"] == ["${oci_ons_notification_topic.alarms.id}"]
    assert alarm["namespace"] == "${var.metrics_namespace}" and alarm["query"] == "${each.value.query}"
    assert "templatefile(\"${path.module}/alarms.json.tftpl\"" in config.texts["monitoring.tf"]
    assert TEMPLATE == tf.TF_DIR / "alarms.json.tftpl"
    template_vars = set(re.findall(r"\$\{(\w+)\}", TEMPLATE.read_text()))
    passed = set(re.findall(r"^\s+(\w+)\s+=", config.texts["monitoring.tf"].split("templatefile(")[1].split("}))")[0], re.M))
    assert template_vars == passed, "monitoring.tf must pass exactly the template's variables"
    alarms = load_alarms("prod")
    assert {a.name for a in alarms} == {"snapshot_age", "no_compaction", "stale_reads", "errors_5xx", "degraded", "quota"}
    readme = (tf.REPO / "infra" / "README.md").read_text()
    for a in alarms:
        evaluate(a.query, [], 0.0)  # every query is one the local evaluator understands
        assert a.severity in ("CRITICAL", "ERROR", "WARNING", "INFO")
        anchor = a.runbook.split("#")[1]
        assert f"### Alarm: {anchor.removeprefix('alarm-')}" in readme or anchor in readme, f"no runbook for {a.name}"
    emails = [config.resource("oci_ons_subscription", n) for n in ("alarm_email", "alarm_https")]
    assert [s["protocol"] for s in emails] == ["EMAIL", "CUSTOM_HTTPS"]
    assert all(s["topic_id"] == "${oci_ons_notification_topic.alarms.id}" for s in emails)
