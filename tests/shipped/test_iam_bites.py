"""The IAM tier bites: with any one statement removed from the transcoder's or the consumer's
role in deploy/stack.yaml, a short run of the pipeline goes wrong, and with none removed it
does not. (A statement that no run misses is one the programs do not need: drop it from the
stack, or add the run that needs it.)

    python -m unittest discover -s tests/shipped -p test_iam_bites.py
"""

import unittest

import scenarios
from emulator import STACK
from pipeline import Pipeline
from template import load_template

ROLES = ("TranscoderRole", "ConsumerRole")
# What moto cannot show, and why. AWS answers a GET or HEAD of a missing key with 403 when the
# caller may not list the bucket, and the programs would retry that instead of failing the job
# at once; moto answers 404 whatever the caller may list.
MOTO_CANNOT_SHOW = {"s3:ListBucket"}


def statements_of(role):
    policies = load_template(STACK)["Resources"][role]["Properties"]["Policies"]
    return policies[0]["PolicyDocument"]["Statement"]


def run(scenario, drop=()):
    pipeline = Pipeline(drop=drop)
    try:
        return scenario(pipeline)
    finally:
        pipeline.close()


class EveryStatementIsNeeded(unittest.TestCase):
    def test_with_every_statement_both_runs_go_right(self):
        for scenario in (scenarios.warm, scenarios.ecs, scenarios.split):
            with self.subTest(scenario.__name__):
                self.assertEqual(run(scenario), [])

    def test_without_any_one_statement_a_run_goes_wrong(self):
        for role in ROLES:
            for index, statement in enumerate(statements_of(role)):
                drop = f"{role}:{index}"
                with self.subTest(drop=drop, action=statement["Action"]):
                    actions = statement["Action"]
                    if set(actions if isinstance(actions, list) else [actions]) <= MOTO_CANNOT_SHOW:
                        self.skipTest(f"moto cannot show what {drop} is for")
                    problems = (run(scenarios.warm, [drop]) or run(scenarios.ecs, [drop])
                                or run(scenarios.split, [drop]))
                    self.assertNotEqual(problems, [], f"nothing needs {drop}: {statement}")


if __name__ == "__main__":
    unittest.main()
