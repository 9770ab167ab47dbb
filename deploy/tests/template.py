"""Reading a CloudFormation template in YAML as CloudFormation does: the short forms of the
intrinsic functions (!Ref, !GetAtt, !Sub...) become their long JSON forms, so the tests
compare plain dicts."""

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's tags."""


def _intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {"Fn::" + tag_suffix: value}


_Loader.add_multi_constructor("!", _intrinsic)


def load_template(path):
    """The template at `path` as plain data."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def statements(document):
    """The statements of a policy document (one statement may be written without a list)."""
    found = document["Statement"]
    return found if isinstance(found, list) else [found]
