"""`transcoder local` as its image runs it: PID 1 of its own PID namespace, as uid 10001, with
the image's entrypoint; with a runtime init above it and without; and the bare binary as PID 1
(no tini at all), the case that once failed every job with `cannot run ffprobe`.

    python -m unittest discover -s tests/shipped -p test_pid1.py
"""

import tempfile
import time
import unittest
from pathlib import Path

from containers import Container
from media import frames_played, make_clip

SOURCE_FRAMES = 60  # 2 s at 30 fps


class LocalAsShipped(unittest.TestCase):
    def setUp(self):
        folder = tempfile.TemporaryDirectory(prefix="shipped-pid1-")
        self.addCleanup(folder.cleanup)
        self.scratch = folder.name
        self.source = make_clip(Path(self.scratch) / "clip.mp4", seconds=2)

    def run_local(self, name, **how):
        container = Container(name, "transcoder.Dockerfile", self.scratch,
                              command=["local", "clip.mp4", "out"],
                              files=[(self.source, "clip.mp4")], **how)
        status = container.wait(timeout=120)
        self.assertEqual(status, 0, container.output())
        frames, complaint = frames_played(container.work / "out" / "master.m3u8")
        self.assertEqual((frames, complaint), (SOURCE_FRAMES, ""), container.output())
        return container

    def test_the_image_entrypoint_as_pid_1_transcodes_and_the_output_plays(self):
        # `docker run vod/transcoder local ...` with no --init: the image's tini is PID 1.
        self.run_local("entrypoint")

    def test_under_a_runtime_init_as_compose_and_ecs_start_it(self):
        self.run_local("runtime-init", runtime_init=True)

    def test_the_bare_binary_as_pid_1_starts_its_tools(self):
        # The image before tini: `transcoder` itself is PID 1. Its tools' parent-death check
        # once took "my parent is PID 1" for "my parent died" and failed every ffprobe start.
        self.run_local("bare", entrypoint=["transcoder"])

    def test_the_process_tree_is_the_images(self):
        # PID 1 is the init, the transcoder is its child, every process runs as the image's
        # user; ffmpeg runs below the transcoder while it works.
        container = Container("tree", "transcoder.Dockerfile", self.scratch,
                              command=["local", "clip.mp4", "out"],
                              files=[(self.source, "clip.mp4")], runtime_init=True)
        seen = set()
        while container.process.poll() is None:
            try:
                seen.update(container.tree())
            except RuntimeError:
                pass
            time.sleep(0.02)
        self.assertEqual(container.wait(timeout=1), 0, container.output())
        self.assertIn((1, "tini", 10001), seen, "the runtime's init is PID 1")
        inits = sorted(pid for pid, name, _ in seen if name == "tini")
        self.assertEqual(len(inits), 2, f"the runtime's init, then the image's: {seen}")
        self.assertIn("transcoder", {name for _, name, _ in seen}, seen)
        self.assertIn("ffmpeg", {name for _, name, _ in seen}, seen)
        self.assertEqual({uid for _, _, uid in seen}, {10001}, seen)


if __name__ == "__main__":
    unittest.main()
