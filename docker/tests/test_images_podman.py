"""The runtime images built and run for real with podman (docker/tests/podman.sh says how and
why that way). Needs root; scripts/test.sh runs it after the workspace's build.

    python -m unittest discover -s docker/tests -p test_images_podman.py
"""

import os
import subprocess
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent


class RuntimeImages(unittest.TestCase):
    def test_the_runtime_images_build_and_run_under_podman(self):
        if os.geteuid() != 0:
            self.fail("building images with podman needs root, as the README's test command runs")
        run = subprocess.run(["sh", str(HERE / "podman.sh")], capture_output=True, text=True,
                             timeout=1200)
        self.assertEqual(run.returncode, 0, (run.stdout + run.stderr)[-6000:])
        self.assertIn("all good", run.stderr)


if __name__ == "__main__":
    unittest.main()
