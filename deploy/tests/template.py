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
