"""Reading a Dockerfile as the builder does, for the checks here and for tests/shipped, which
runs the binaries with what the runtime stage declares (user, environment, entrypoint, command,
health check) instead of a retyped copy."""

import json
from pathlib import Path

DOCKER = Path(__file__).resolve().parents[1]


def dockerfile(name):
    """(instruction, argument) pairs of docker/NAME, continuation lines joined."""
    text = (DOCKER / name).read_text().replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def final_stage(pairs):
    """The instructions of the last stage: what the image ships."""
    last = max(i for i, (word, _) in enumerate(pairs) if word == "FROM")
    return pairs[last:]


def runtime(name):
    """What the image of docker/NAME runs: {user, workdir, env, entrypoint, cmd, healthcheck},
    the exec forms as lists (the only forms our Dockerfiles use)."""
    image = {"user": "0", "workdir": "/", "env": {}, "entrypoint": [], "cmd": [], "healthcheck": None}
    for word, arg in final_stage(dockerfile(name)):
        if word == "USER":
            image["user"] = arg
        elif word == "WORKDIR":
            image["workdir"] = arg
        elif word == "ENV":
            # `ENV A=1 B=2` (values here hold no spaces)
            for pair in arg.split():
                key, _, value = pair.partition("=")
                image["env"][key] = value
        elif word == "ENTRYPOINT":
            image["entrypoint"] = json.loads(arg)
        elif word == "CMD":
            image["cmd"] = json.loads(arg)
        elif word == "HEALTHCHECK" and "CMD" in arg:
            image["healthcheck"] = json.loads(arg[arg.index("CMD") + 3:].strip())
    return image
