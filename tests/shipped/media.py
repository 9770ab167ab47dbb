"""Sources made with real ffmpeg, and outputs checked by playing them with real ffmpeg."""

import subprocess
from pathlib import Path

from botocore.exceptions import ClientError


def make_clip(path, seconds=2, size="640x360", audio=True):
    """A test pattern with a tone, H.264 and AAC in MP4."""
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac"]
    subprocess.run(args + [str(path)], check=True)
    return Path(path)


def frames_played(playlist):
    """How many video frames ffmpeg decodes from `playlist` (local files only), and what it
    complained of: (frames, stderr). A stream that plays has frames and no complaint."""
    run = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-protocol_whitelist", "file",
         "-i", str(playlist), "-map", "0:v:0", "-f", "null", "-progress", "pipe:1", "-"],
        capture_output=True, text=True, timeout=120,
    )
    frames = 0
    for line in run.stdout.splitlines():
        if line.startswith("frame="):
            frames = int(line.split("=", 1)[1])
    return frames, run.stderr.strip() + ("" if run.returncode == 0 else f" (exit {run.returncode})")


def download_prefix(s3, bucket, prefix, folder):
    """Copies every object under `prefix` into `folder`, keeping the relative paths."""
    folder = Path(folder)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):]
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                s3.download_file(bucket, item["Key"], str(target))
            except ClientError as e:
                # Gone since the listing: a job's prefix lease, released after its record.
                if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                    raise
    return folder
