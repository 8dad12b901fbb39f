"""The deployment path is true: docker-compose.yml, .env.example and the first-deployment runbook agree.

``docker compose config`` is what an operator runs first. Where the Compose v2
CLI is installed it is run for real; everywhere, the file is interpolated the
way Compose does (``${VAR:-default}``, ``${VAR:?message}``, ``$$``) with the
values of .env.example and validated against the Compose Specification's JSON
schema (tests/newcomer/compose-spec.json, compose-spec/compose-spec at
170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0). Every service's command
must exist in the image: its management commands resolve, its modules import.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.core.management import get_commands

from backoffice import config
from tests.newcomer.conftest import PROJECT

COMPOSE = PROJECT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT / ".env.example"
RUNBOOK = PROJECT / "docs" / "runbooks" / "first-deployment.md"
SCHEMA = Path(__file__).with_name("compose-spec.json")
IMAGE = "backoffice:local"
# What an operator pastes into the two required values (runbook step 1).
FILLED = {"DJANGO_SECRET_KEY": "w9Kq2Lz7Xv4Bn8Mc1Rt6Yp3Hs5Jd0Gf-Ua7Ie2Oo9Pl4Kj1Hh6Gg3Ff8Dd5Ss0Aa",
          "POSTGRES_PASSWORD": "0f4c2b9e7d1a6c3b8e5f2a9d4c7b1e6f3a8d5c2b9e7f4a1d"}
# Read by a program in the image rather than by the settings: gunicorn's worker count.
READ_BY_GUNICORN = {"WEB_CONCURRENCY"}
SET_BY_COMPOSE = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingRequired(Exception):
    pass


def env_example() -> tuple[dict[str, str], set[str]]:
    """The variables .env.example sets (name -> value), and those it only documents (``# NAME=...``)."""
    values, documented = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            values[match[1]] = match[2]
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line.strip()):
            documented.add(match[1])
    return values, documented


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string value in the parsed file."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":?", "?") and missing:
            raise MissingRequired(f"{name}: {arg}")
        if op in (":-", "-") and missing:
            return arg
        return value or ""

    return VARIABLE.sub(one, node)


def compose_variables() -> set[str]:
    return {m["name"] for m in VARIABLE.finditer(COMPOSE.read_text()) if m["name"]}


def resolved(env: Mapping[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)


def filled_env() -> dict[str, str]:
    values, _ = env_example()
    return {**values, **FILLED}


def app_services(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in cfg["services"].items() if svc.get("image") == IMAGE}


def service_environment(service: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """What the process in the container sees: env_file (.env), then environment."""
    return {**env, **{key: str(value) for key, value in service.get("environment", {}).items()}}


def env_names_read_by_the_app() -> set[str]:
    source = (PROJECT / "backoffice" / "config.py").read_text() + (PROJECT / "backoffice" / "settings.py").read_text()
    pattern = r'(?:env|environ)\.get\("([A-Z][A-Z0-9_]*)"|\(env, "([A-Z][A-Z0-9_]*)"|_http_url\("([A-Z][A-Z0-9_]*)"'
    names = {name for groups in re.findall(pattern, source) for name in groups if name}
    return names | set(config.PRODUCTION_SETTINGS)


def manage_py_commands(text: str) -> list[tuple[str, str]]:
    """(service, management command) of every ``docker compose exec|run ... SERVICE python manage.py CMD``."""
    found = []
    for match in re.finditer(r"docker compose (?:exec|run)((?: --?[\w-]+)*) (\w+) python manage\.py (\w+)", text):
        found.append((match[2], match[3]))
    return found


# --- The file parses, as `docker compose config` would --------------------------------


def test_compose_config_parses_and_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    cfg = resolved(filled_env())

    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(cfg)
    assert set(cfg["services"]) == {"postgres", "redis", "migrate", "web", "worker", "beat", "stream"}

    docker = shutil.which("docker")
    has_compose_v2 = docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    if has_compose_v2:
        env_file = tmp_path / ".env"
        env_file.write_text("".join(f"{key}={value}\n" for key, value in filled_env().items()))
        result = subprocess.run([docker, "compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config",
                                 "--quiet"], capture_output=True, text=True, cwd=PROJECT)
        assert result.returncode == 0, result.stderr


def test_without_the_required_values_compose_refuses_and_names_them() -> None:
    values, _ = env_example()
    for name in FILLED:
        assert values.get(name) == "", f".env.example must leave {name} empty for the operator to fill in"
        with pytest.raises(MissingRequired, match=f"^{name}: set {name} in .env"):
            resolved({**filled_env(), name: ""})


def test_the_image_is_built_once_and_every_application_service_runs_it() -> None:
    cfg = resolved(filled_env())

    builders = [name for name, svc in cfg["services"].items() if "build" in svc]
    assert builders == ["migrate"], builders
    assert set(app_services(cfg)) == {"migrate", "web", "worker", "beat", "stream"}
    assert cfg["services"]["stream"]["profiles"] == ["alpaca"]  # only when Alpaca is the broker
    for name, svc in app_services(cfg).items():
        assert svc["env_file"] == ".env", name
        if name != "migrate":
            assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


# --- Every command exists in the image ---------------------------------------------------


def _check_command(argv: list[str]) -> None:
    requirements = (PROJECT / "requirements.txt").read_text().lower()
    if argv[:2] == ["sh", "-c"]:
        for part in argv[2].split("&&"):
            _check_command(shlex.split(part))
        return
    program = argv[0]
    if program == "python":
        assert argv[1] == "manage.py", argv
        assert argv[2] in get_commands(), f"no management command {argv[2]!r}"
    elif program == "gunicorn":
        assert re.search(r"^gunicorn==", requirements, re.MULTILINE)
        module, attribute = argv[1].split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), argv[1]
    elif program == "celery":
        assert re.search(r"^celery(\[[\w,]+\])?==", requirements, re.MULTILINE)
        app = next(a.split("=", 1)[1] for a in argv if a.startswith("--app="))
        celery_app = importlib.import_module(app).celery_app
        assert celery_app.main == app
        assert argv[2] in {"worker", "beat"}, argv
    else:
        pytest.fail(f"unchecked program {program!r} in {argv}")


def test_every_service_command_and_healthcheck_exists_in_the_image() -> None:
    cfg = resolved(filled_env())

    for name, svc in app_services(cfg).items():
        _check_command(svc["command"])
        if name != "migrate":
            test = svc["healthcheck"]["test"]
            assert test[:3] == ["CMD", "bash", "/app/scripts/healthcheck.sh"], test
            script = (PROJECT / "scripts" / "healthcheck.sh").read_text()
            assert re.search(rf"^{test[3]}\)$", script, re.MULTILINE), f"healthcheck.sh has no {test[3]!r} case"


def test_the_commands_the_docs_give_an_operator_exist() -> None:
    cfg = resolved(filled_env())
    docs = RUNBOOK.read_text() + (PROJECT / "README.md").read_text() + COMPOSE.read_text()

    commands = manage_py_commands(docs)
    assert ("web", "create_risk_officer") in commands  # the first officer after `up`
    for service, command in commands:
        assert service in cfg["services"], service
        assert command in get_commands(), command


# --- compose, .env.example and the runbook agree --------------------------------------


def test_every_variable_is_named_the_same_in_compose_env_example_and_the_runbook() -> None:
    values, documented = env_example()
    in_example = set(values) | documented
    in_compose = compose_variables()
    read_by_app = env_names_read_by_the_app()
    runbook = RUNBOOK.read_text()
    prose = re.sub(r"^```.*?^```", "", runbook, flags=re.MULTILINE | re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", prose)
    in_runbook = {m[1] for span in spans if (m := re.match(r"([A-Z][A-Z0-9_]+)(=|$)", span))}
    in_runbook |= set(re.findall(r"^([A-Z][A-Z0-9_]+)=", runbook, re.MULTILINE))
    required = {m["name"] for m in VARIABLE.finditer(COMPOSE.read_text()) if m["op"] in (":?", "?")}

    assert in_compose <= in_example, f"compose uses, .env.example lacks: {in_compose - in_example}"
    unused = set(values) - in_compose - read_by_app - READ_BY_GUNICORN
    assert not unused, f".env.example sets variables nothing reads: {unused}"
    assert not set(values) & SET_BY_COMPOSE, "compose sets these itself; .env.example must not"
    assert in_runbook <= in_example | SET_BY_COMPOSE, (
        f"runbook names unknown variables: {in_runbook - in_example - SET_BY_COMPOSE}")
    assert required == set(FILLED), required
    required_table = runbook[runbook.index("Two values are required"):runbook.index("Everything else")]
    assert {name for name in required if f"`{name}`" in required_table} == required
    assert set(values) <= in_runbook, f"runbook does not mention: {set(values) - in_runbook}"


def test_the_compose_defaults_serve_plain_http_without_bouncing_to_https() -> None:
    cfg = resolved(filled_env())
    web_env = service_environment(cfg["services"]["web"], filled_env())

    settings = config.from_environ(web_env, base_dir=PROJECT)

    assert web_env["DJANGO_SECURE_SSL_REDIRECT"] == "false"
    assert settings.secure_ssl_redirect is False and settings.debug is False and not settings.embedded
    assert settings.database_url.startswith("postgresql://") and settings.celery_broker_url.startswith("redis://")
    assert cfg["services"]["web"]["ports"] == ["127.0.0.1:8000:8000"]
