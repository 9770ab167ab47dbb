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
        """`node` resolved; AWS::NoValue drops the key or list item that holds it."""
        if isinstance(node, list):
            items = (self(item) for item in node)
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            items = ((key, self(value)) for key, value in node.items())
            return {key: value for key, value in items if value is not NO_VALUE}
        (key, value), = node.items()
        if key == "Ref":
            return NO_VALUE if value == "AWS::NoValue" else self.refs[value]
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
        resolved = self(value)
        return {} if resolved is NO_VALUE else {key: resolved}

    def _sub(self, name, extra):
        if name in extra:
            return extra[name]
        if "." in name:
            return self.attrs[name]
        return self.refs[name]


NO_VALUE = object()


def resolve(value, conditions):
    """`value` as CloudFormation would see it with `conditions` (name -> bool): each Fn::If
    takes its branch, and AWS::NoValue drops the key or list item that holds it."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, then, otherwise = value["Fn::If"]
            return resolve(then if conditions[name] else otherwise, conditions)
        if value == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        out = {}
        for key, item in value.items():
            item = resolve(item, conditions)
            if item is not NO_VALUE:
                out[key] = item
        return out
    if isinstance(value, list):
        items = (resolve(item, conditions) for item in value)
        return [item for item in items if item is not NO_VALUE]
    return value


def evaluate_rule_function(value, parameters):
    """A Rules condition or assertion (Fn::Equals, Fn::Contains, Fn::Not, Fn::And, Fn::Or,
    Ref) with the given parameter values."""
    if isinstance(value, dict):
        ((function, argument),) = value.items()
        if function == "Ref":
            return parameters[argument]
        args = [evaluate_rule_function(a, parameters) for a in argument]
        if function == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if function == "Fn::Contains":
            return str(args[1]) in [str(v) for v in args[0]]
        if function == "Fn::Not":
            return not args[0]
        if function == "Fn::And":
            return all(args)
        if function == "Fn::Or":
            return any(args)
        raise ValueError(f"no rule function {function}")
    if isinstance(value, list):
        return [evaluate_rule_function(v, parameters) for v in value]
    return value


def rules_accept(template, parameters):
    """The AssertDescription of every rule the parameters fail (none: accepted)."""
    failed = []
    for rule in template.get("Rules", {}).values():
        condition = rule.get("RuleCondition")
        if condition is not None and not evaluate_rule_function(condition, parameters):
            continue
        for assertion in rule["Assertions"]:
            if not evaluate_rule_function(assertion["Assert"], parameters):
                failed.append(assertion.get("AssertDescription", "?"))
    return failed
