"""`python -m offline run` on a user's own images, as a user runs it: the summary on the console, and none of the
libraries' warnings or log records (moto's, Powertools') — those go to .local/lambda.log."""

import subprocess
import sys
from pathlib import Path

from tests.support import images

ROOT = Path(__file__).resolve().parents[2]


def test_offline_run_prints_its_summary_and_nothing_of_the_libraries(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "me.jpg").write_bytes(images.portrait())
    (photos / "broken.jpg").write_bytes(images.corrupt_jpeg())  # refused: a failure record, not a crash
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "offline",
            "run",
            str(photos),
            "--operation",
            "idphoto",
            "--option",
            "size=295x413",
            "--out",
            str(tmp_path / "out"),
            "--timeout",
            "120",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    assert "me.jpg" in console and "broken.jpg" in console
    for noise in ("Warning", "moto/", "moto.", "Traceback", "DEBUG", " ERROR ", "aws_lambda_powertools"):
        assert noise not in console, (noise, console[-3000:])
    assert (tmp_path / "out" / "report.html").exists()
