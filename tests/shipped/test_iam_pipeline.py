"""The pipeline as deployed, under IAM: every program with its own role from deploy/stack.yaml,
started from the stack's task definitions as its image runs it (pipeline.py, containers.py).

Every path a job takes runs here: publish, re-publish over an earlier output (which deletes the
old master first), the clean-up of a failed job, the heartbeat and the delete of the message,
a message handed back by a stopped transcoder and redelivered, RunTask with iam:PassRole,
DELETE_SOURCE on both paths (the consumer deletes for a warm job, the task for an ECS one), and
a CMAF job's sidecar search in the source bucket.

    python -m unittest discover -s tests/shipped -p test_iam_pipeline.py
"""

import json
import tempfile
import time
import unittest
from pathlib import Path

from media import make_clip
from pipeline import Pipeline


class Sources:
    """Clips shared by the tests: 2 s and 3 s, 360p."""

    folder = tempfile.TemporaryDirectory(prefix="shipped-sources-")
    first = make_clip(Path(folder.name) / "first.mp4", seconds=2)
    second = make_clip(Path(folder.name) / "second.mp4", seconds=3)
    garbage = Path(folder.name) / "garbage.mp4"
    garbage.write_bytes(b"this is not a video, whatever its name says\n" * 100)


class WarmPipelineUnderIam(unittest.TestCase):
    """Warm transcoders and the consumer (dispatch as the stack's default, auto)."""

    def setUp(self):
        self.pipeline = Pipeline()
        self.addCleanup(self.pipeline.close)

    def test_publish_republish_and_a_failure_each_end_in_a_true_record(self):
        p = self.pipeline
        p.warm_transcoders(2)
        p.consumer(extra={"DELETE_SOURCE": "true"})

        p.upload("uploads/clip.mp4", Sources.first)
        done = p.wait_for("uploads/clip.mp4", {"done", "failed"})
        self.assertEqual(done["status"], "done", done)
        self.assertEqual(p.plays("uploads/clip.mp4"), (60, ""))

        # Same key, new bytes: the job replaces the published output.
        p.upload("uploads/clip.mp4", Sources.second)
        again = p.wait_for("uploads/clip.mp4", {"done", "failed"}, after=done["source"]["etag"])
        self.assertEqual(again["status"], "done", again)
        self.assertEqual(p.plays("uploads/clip.mp4"), (90, ""))

        # Not a video: a failed record, the message deleted, nothing else published.
        p.upload("uploads/bad.mp4", Sources.garbage)
        failed = p.wait_for("uploads/bad.mp4", {"done", "failed"})
        self.assertEqual((failed["status"], failed["error"]["kind"]), ("failed", "invalid_input"))

        p.wait_drained()
        self.assertEqual(p.queue_counts(p.dlq), (0, 0))
        self.assertFalse(p.source_exists("uploads/clip.mp4"), "DELETE_SOURCE: the consumer deletes")
        self.assertTrue(p.source_exists("uploads/bad.mp4"), "a failed job keeps its source")
        events = p.status_events()
        self.assertEqual(sorted(e["status"] for e in events), ["done", "done", "failed"], events)
        self.assertEqual(p.denials(), [])

    def test_a_stopped_transcoder_hands_its_message_back_and_the_other_finishes(self):
        p = self.pipeline
        # A drain far shorter than the job: the stopped transcoder gives the job up rather than
        # finishing it within its stop timeout, and its message comes back at once
        # (ChangeMessageVisibility to 0) for the other transcoder to take.
        first, second = p.warm_transcoders(2, extra={"TRANSCODER_DRAIN_SECONDS": "1"})
        consumer = p.consumer()
        long_clip = make_clip(p.scratch / "long.mp4", seconds=20, size="1280x720")
        p.upload("uploads/long.mp4", long_clip)
        # Whichever took it: stop it as ECS stops a Spot task.
        deadline = time.time() + 60
        busy = None
        while busy is None and time.time() < deadline:
            busy = next((t for t in (first, second)
                         if any(name == "ffmpeg" for _, name, _ in t.tree())), None)
            time.sleep(0.2)
        self.assertIsNotNone(busy, "no transcoder started ffmpeg")
        busy.stop(grace=30)
        record = p.wait_for("uploads/long.mp4", {"done", "failed"}, timeout=240)
        self.assertEqual(record["status"], "done", record)
        self.assertEqual(p.plays("uploads/long.mp4")[1], "")
        p.wait_drained()
        # The message came back (the stopped job's retryable failure) and went to the other.
        takers = [line["fields"]["by"] for line in consumer.log()
                  if line["fields"]["message"] == "job handed over"]
        self.assertEqual(len(set(takers)), 2, takers)
        self.assertEqual(p.denials(), [])


class EcsTasksUnderIam(unittest.TestCase):
    """The consumer with the stack's DispatchMode=ecs: RunTask through IAM, the task's
    `transcoder run` with the task role."""

    def setUp(self):
        self.pipeline = Pipeline()
        self.addCleanup(self.pipeline.close)

    def test_a_job_runs_as_an_ecs_task_and_deletes_its_source(self):
        p = self.pipeline
        agent = p.ecs_agent()
        p.consumer(extra={"DELETE_SOURCE": "true"}, DispatchMode="ecs")
        p.upload("uploads/task.mp4", Sources.first)
        (task,) = agent.wait_for_tasks(1)
        self.assertEqual(task.wait(timeout=120), 0, task.output())
        record = p.wait_for("uploads/task.mp4", {"done", "failed"})
        self.assertEqual(record["status"], "done", record)
        self.assertEqual(p.plays("uploads/task.mp4"), (60, ""))
        p.wait_drained()
        self.assertFalse(p.source_exists("uploads/task.mp4"), "DELETE_SOURCE: the task deletes")
        self.assertEqual([e["status"] for e in p.status_events()], ["done"])
        self.assertEqual(p.denials(), [])


class RangeTasksUnderIam(unittest.TestCase):
    """A warm transcoder splits a long upload over one-shot range tasks it starts: RunTask,
    DescribeTasks and iam:PassRole with the transcoder role, `transcoder run-range` in the job
    task definition as its image runs it."""

    def setUp(self):
        self.pipeline = Pipeline()
        self.addCleanup(self.pipeline.close)

    def test_a_long_upload_is_finished_by_range_tasks_and_plays(self):
        import scenarios
        p = self.pipeline
        self.assertEqual(scenarios.split(p), [])
        tasks = [c for c in p.agent.containers.values() if "run-range" in c.argv]
        self.assertTrue(tasks)
        for task in tasks:
            self.assertEqual(task.argv[-1], "run-range", task.argv)
            self.assertEqual(task.env["AWS_ACCESS_KEY_ID"],
                             p.aws.roles["TranscoderRole"]["AccessKeyId"])
        self.assertEqual(p.plays("uploads/long.mp4"), (1200, ""))
        self.assertEqual(p.denials(), [])


if __name__ == "__main__":
    unittest.main()


class CmafUnderIam(unittest.TestCase):
    """A warm transcoder writing CMAF, with the transcoder role: the sidecar search
    (ListObjectsV2 and GetObject beside the source), the subtitles, I-frame playlists and the
    DASH manifest published; and a sidecar uploaded after its video republishing the video."""

    def setUp(self):
        self.pipeline = Pipeline()
        self.addCleanup(self.pipeline.close)

    def test_a_cmaf_job_finds_its_sidecars_before_and_after_the_video(self):
        p = self.pipeline
        p.warm_transcoders(1, extra={"TRANSCODER_SEGMENTS": "cmaf"})
        p.consumer()
        sidecar = p.scratch / "talk.en.vtt"
        sidecar.write_text("WEBVTT\n\n00:00.500 --> 00:01.500\nHello from the sidecar\n")
        p.upload("uploads/talk.en.vtt", sidecar)
        p.upload("uploads/talk.mp4", Sources.first)
        done = p.wait_for("uploads/talk.mp4", {"done", "failed"})
        self.assertEqual(done["status"], "done", done)
        self.assertEqual([s["language"] for s in done["subtitles"]], ["en"], done)
        self.assertEqual(p.plays("uploads/talk.mp4"), (60, ""))
        prefix = p.prefix("uploads/talk.mp4")
        mpd = p.s3.get_object(Bucket=p.out, Key=prefix + "manifest.mpd")["Body"].read().decode()
        self.assertIn(f'{done["version"]}/subs/subtitles.vtt', mpd)
        master = p.s3.get_object(Bucket=p.out, Key=prefix + "master.m3u8")["Body"].read().decode()
        self.assertIn("#EXT-X-I-FRAME-STREAM-INF", master)
        p.wait_drained()
        # The first sidecar's own job found nothing to do: either no video was recorded yet,
        # or the video was already published with it. It wrote no record of its own.
        self.assertIsNone(p.manifest("uploads/talk.en.vtt"))
        self.assertEqual(p.manifest("uploads/talk.mp4")["version"], done["version"])

        # A sidecar uploaded after the video republishes the video, with both.
        late = p.scratch / "talk.fr.srt"
        late.write_text("1\n00:00:00,500 --> 00:00:01,500\nBonjour du fichier\n")
        p.upload("uploads/talk.fr.srt", late)
        again = p.wait_for("uploads/talk.mp4", {"done", "failed"}, after_version=done["version"])
        self.assertEqual(again["status"], "done", again)
        self.assertEqual([s["language"] for s in again["subtitles"]], ["en", "fr"], again)
        self.assertEqual([s["key"] for s in again["source"]["sidecars"]],
                         ["uploads/talk.en.vtt", "uploads/talk.fr.srt"], again)
        master = p.s3.get_object(Bucket=p.out, Key=prefix + "master.m3u8")["Body"].read().decode()
        self.assertIn('LANGUAGE="fr"', master)
        self.assertEqual(p.plays("uploads/talk.mp4"), (60, ""))
        p.wait_drained()
        self.assertEqual(p.manifest("uploads/talk.mp4")["version"], again["version"])
        self.assertEqual(p.denials(), [])
