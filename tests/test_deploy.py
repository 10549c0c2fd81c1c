"""Static checks of deploy/: the properties an operator relies on, checked by parsing.

No Docker engine is needed: the Dockerfile is parsed line by line, the Compose file with PyYAML.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.fernet import Fernet

from rotator.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "rotator.env.example"
KEY_VARS = ("ROTATOR_MASTER_KEY", "ROTATOR_AUDIT_KEY")
ROTATOR_SERVICES = ("worker", "beat")


# --- helpers ---------------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends in a line continuation"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def is_root(user: str) -> bool:
    name, _, group = str(user).partition(":")
    return name.strip() in ("", "root", "0") or group.strip() in ("root", "0")


def env_map(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


def command_text(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(str(part) for part in command)


def env_file_paths(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    if isinstance(files, str):
        files = [files]
    return [item if isinstance(item, str) else item["path"] for item in files]


def parse_env_file(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


# --- parser self-checks (so the checks below cannot pass vacuously) --------------------------


def test_dockerfile_parser_joins_continuations_and_drops_comments() -> None:
    parsed = parse_dockerfile("FROM a AS b\n# USER root\nRUN x \\\n    && y\nUSER 10001\n")
    assert parsed == [("FROM", "a AS b"), ("RUN", "x  && y"), ("USER", "10001")]


@pytest.mark.parametrize(
    ("user", "root"),
    [("root", True), ("0", True), ("0:0", True), ("10001:0", True), ("10001:10001", False)],
)
def test_is_root(user: str, root: bool) -> None:
    assert is_root(user) is root


# --- Dockerfile --------------------------------------------------------------------------------


def test_image_runs_as_numeric_non_root_user_after_install(
    dockerfile: list[tuple[str, str]],
) -> None:
    stage = final_stage(dockerfile)
    users = [(i, args) for i, (keyword, args) in enumerate(stage) if keyword == "USER"]
    assert users, "final stage has no USER instruction: the container would run as root"
    last_index, last_user = users[-1]
    assert not is_root(last_user), f"final USER is root: {last_user}"
    assert last_user.partition(":")[0].isdigit(), "USER should be numeric (runAsNonRoot checks)"
    install_steps = [
        i for i, (keyword, args) in enumerate(stage) if keyword == "RUN" or "--from=" in args
    ]
    assert install_steps and last_index > max(install_steps), "USER must follow the install steps"


def test_image_installs_the_project(dockerfile: list[tuple[str, str]]) -> None:
    runs = [args for keyword, args in dockerfile if keyword == "RUN"]
    assert any(re.search(r"pip install (\S+ )*\.(\s|$)", run) for run in runs)
    copied = " ".join(args for keyword, args in dockerfile if keyword == "COPY")
    for needed in ("pyproject.toml", "rotator", "celeryconfig.py"):
        assert needed in copied, f"{needed} is not copied into the build"


def test_image_installs_no_extras(dockerfile: list[tuple[str, str]]) -> None:
    # The sandbox extra (starlette, uvicorn) and the dev extra stay out of the production image.
    installs = [args for keyword, args in dockerfile if keyword == "RUN" and "pip install" in args]
    assert installs
    for run in installs:
        assert "[" not in run, f"the image installs an extra: {run}"
        assert not re.search(r"\b(starlette|uvicorn)\b", run), f"sandbox deps in the image: {run}"


def test_entrypoint_is_rotator_and_default_command_is_worker(
    dockerfile: list[tuple[str, str]],
) -> None:
    stage = final_stage(dockerfile)
    entrypoints = [args for keyword, args in stage if keyword == "ENTRYPOINT"]
    commands = [args for keyword, args in stage if keyword == "CMD"]
    assert entrypoints and exec_form(entrypoints[-1]) == ["rotator"]
    assert commands and exec_form(commands[-1]) == ["worker"]


def test_healthcheck_runs_rotator(dockerfile: list[tuple[str, str]]) -> None:
    checks = [args for keyword, args in final_stage(dockerfile) if keyword == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK"
    assert re.search(r"\bCMD\b.*\brotator\b", checks[-1])


def test_python_env_and_writable_workdir(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE[= ]1\b", env)
    assert re.search(r"\bPYTHONUNBUFFERED[= ]1\b", env)
    workdirs = [args for keyword, args in stage if keyword == "WORKDIR"]
    assert workdirs, "no WORKDIR in the final stage"
    chowned = " ".join(args for keyword, args in stage if keyword == "RUN")
    assert re.search(rf"chown\s+\S*10001\S*\s+(\S+\s+)*{re.escape(workdirs[-1])}\b", chowned)


def test_no_key_material_baked_into_image(dockerfile: list[tuple[str, str]]) -> None:
    for keyword, args in dockerfile:
        if keyword in ("ENV", "ARG"):
            for name in KEY_VARS:
                assert name not in args, f"{keyword} sets {name}: secrets would be in the image"


# --- Compose -----------------------------------------------------------------------------------


def test_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert str(redis["image"]).split(":")[0] in ("redis", "docker.io/library/redis")
    command = command_text(redis["command"])
    assert re.search(r"--appendonly\s+\"?yes\b", command)
    # Crash safety needs every acknowledged write durable (the intent before each update).
    assert re.search(r"--appendfsync\s+always\b", command)
    assert re.search(r"--maxmemory-policy\s+noeviction\b", command)


def test_redis_data_on_named_volume_with_healthcheck(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    mounts = [str(v).split(":") for v in redis.get("volumes", [])]
    data = [source for source, target, *_ in mounts if target == "/data"]
    assert data and data[0] in (compose.get("volumes") or {}), "/data is not a named volume"
    assert "redis-cli" in command_text(redis["healthcheck"]["test"])
    assert "ping" in command_text(redis["healthcheck"]["test"])


@pytest.mark.parametrize("name", ROTATOR_SERVICES)
def test_rotator_service_builds_the_dockerfile(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    build = services[name]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT, "build context must be the repository root"
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()


@pytest.mark.parametrize(("name", "command"), [("worker", "worker"), ("beat", "beat")])
def test_rotator_service_command(
    services: dict[str, dict[str, Any]], name: str, command: str
) -> None:
    assert command_text(services[name]["command"]).split() == [command]


@pytest.mark.parametrize("name", ROTATOR_SERVICES)
def test_rotator_service_uses_the_redis_service(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    url = urlsplit(env_map(service)["ROTATOR_REDIS_URL"] or "")
    assert url.scheme == "redis" and url.hostname in services
    assert services[url.hostname]["image"].startswith("redis")
    depends = service["depends_on"]
    assert isinstance(depends, dict), "depends_on must use the long form with a condition"
    assert depends[url.hostname]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ROTATOR_SERVICES)
def test_keys_are_not_inlined_and_come_from_env_file(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    env = env_map(service)
    for var in KEY_VARS:
        value = env.get(var)
        # Allowed: absent (env_file) or a pass-through of the operator's environment, without
        # a default value (a default would be an inlined key).
        passthrough = rf"\$\{{{var}(:?\?[^}}]*)?\}}|\${var}"
        assert value is None or re.fullmatch(passthrough, value), (
            f"{name}: {var} is inlined in the compose file"
        )
    assert "rotator.env" in [Path(p).name for p in env_file_paths(service)]


@pytest.mark.parametrize("name", ROTATOR_SERVICES)
def test_targets_file_mounted_read_only(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    target = env_map(service)["ROTATOR_TARGETS_FILE"]
    assert target == "/etc/rotator/rotator.yaml"
    mounts = [str(v).rsplit(":", 2) for v in service.get("volumes", [])]
    assert any(dest == target and mode == "ro" for _, dest, mode in mounts if mode)


@pytest.mark.parametrize("name", ROTATOR_SERVICES)
def test_rotator_service_is_hardened(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert "user" in service, f"{name}: set user explicitly"
    assert not is_root(service["user"]), f"{name}: runs as root"
    assert service.get("read_only") is True
    tmpfs = service.get("tmpfs") or []
    assert "/tmp" in [str(t).split(":")[0] for t in ([tmpfs] if isinstance(tmpfs, str) else tmpfs)]
    assert service.get("restart") == "unless-stopped"


STATE_DIR = "/var/lib/rotator"


@pytest.mark.parametrize("name", ROTATOR_SERVICES)
def test_state_dir_is_a_persistent_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], name: str
) -> None:
    # Issue 10.15: the audit spool (events not yet in Redis) and the verify checkpoint live in
    # the state dir; on a tmpfs they were lost with every container restart.
    service = services[name]
    assert env_map(service)["ROTATOR_STATE_DIR"] == STATE_DIR
    tmpfs = service.get("tmpfs") or []
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
    assert STATE_DIR not in [str(t).split(":")[0] for t in tmpfs], "state dir on tmpfs"
    mounts = [str(v).split(":") for v in service.get("volumes", [])]
    sources = [source for source, target, *_ in mounts if target == STATE_DIR]
    assert sources and sources[0] in (compose.get("volumes") or {}), "state dir not a volume"


def test_compose_comments_do_not_call_the_state_dir_scratch() -> None:
    for line in COMPOSE.read_text().splitlines():
        if "state dir" in line.lower():
            assert not re.search(r"(?<!not )scratch", line.lower()), line


def test_exactly_one_beat(services: dict[str, dict[str, Any]]) -> None:
    beat = services["beat"]
    assert int((beat.get("deploy") or {}).get("replicas", 1)) == 1
    assert int(beat.get("scale", 1)) == 1


def test_compose_has_no_unexpected_key_material() -> None:
    # Any Fernet-shaped string in the compose file would be a committed key.
    assert not re.search(r"[A-Za-z0-9_-]{43}=", COMPOSE.read_text())


# --- rotator.env.example -----------------------------------------------------------------------


def test_env_example_placeholders_are_not_working_keys() -> None:
    values = parse_env_file(ENV_EXAMPLE)
    for var in KEY_VARS:
        assert values.get(var), f"{var} missing from {ENV_EXAMPLE.name}"
    with pytest.raises(ValueError):
        Fernet(values["ROTATOR_MASTER_KEY"].encode())


def test_env_example_names_only_known_settings() -> None:
    text = ENV_EXAMPLE.read_text()
    names = set(re.findall(r"^#?\s*ROTATOR_([A-Z_]+)=", text, flags=re.MULTILINE))
    assert names, "no ROTATOR_ variables documented"
    unknown = {n for n in names if n.lower() not in Settings.model_fields}
    assert not unknown, f"not Settings fields: {sorted(unknown)}"
