"""Reading a CloudFormation template in YAML as CloudFormation does: the short forms of the
intrinsic functions (!Ref, !GetAtt, !Sub...) become their long JSON forms, so the tests
compare plain dicts."""

import re

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


class Resolver:
    """Evaluates the intrinsic functions of a template's values against known facts, as
    CloudFormation would after creating the resources: tests/shipped uses it to read the roles'
    policies and the task definitions' environments out of the template, with the ARNs and
    names of the resources it made on the emulator.

    refs: logical id or parameter -> what `Ref` gives; attrs: "Logical.Attr" -> what `GetAtt`
    gives; pseudo parameters (AWS::Region...) are refs too. Parameters not in refs take their
    defaults. An unknown name raises KeyError: nothing is guessed."""

    def __init__(self, template, refs, attrs):
        self.template = template
        self.refs = dict(refs)
        for name, parameter in template.get("Parameters", {}).items():
            if name not in self.refs and "Default" in parameter:
                self.refs[name] = parameter["Default"]
        self.attrs = attrs

    def condition(self, name):
        return self(self.template["Conditions"][name])

    def __call__(self, node):
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {key: self(value) for key, value in node.items()}
        (key, value), = node.items()
        if key == "Ref":
            return self.refs[value]
        if key == "Fn::GetAtt":
            return self.attrs[".".join(value)]
        if key == "Fn::Sub":
            text, extra = (value, {}) if isinstance(value, str) else (value[0], self(value[1]))
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub(m.group(1), extra)), text)
        if key == "Fn::Join":
            return value[0].join(str(item) for item in self(value[1]))
        if key == "Fn::Split":
            return self(value[1]).split(value[0])
        if key == "Fn::Select":
            return self(value[1])[int(value[0])]
        if key == "Fn::If":
            return self(value[1]) if self.condition(value[0]) else self(value[2])
        if key == "Fn::Equals":
            return self(value[0]) == self(value[1])
        if key == "Fn::Not":
            return not self(value[0])
        if key == "Fn::And":
            return all(self(v) for v in value)
        if key == "Fn::Or":
            return any(self(v) for v in value)
        if key == "Condition":
            return self.condition(value)
        return {key: self(value)}

    def _sub(self, name, extra):
        if name in extra:
            return extra[name]
        if "." in name:
            return self.attrs[name]
        return self.refs[name]
