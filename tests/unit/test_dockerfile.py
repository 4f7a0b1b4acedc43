"""The image can write the DailyUp volume: its folder exists and belongs to the user the image runs as."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_creates_the_dailyup_volume_folder_for_its_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    user = re.search(r"^USER (\S+)$", dockerfile, re.M).group(1)
    folder = re.search(r"\bdailyup:(/[^\s\],]+)", compose).group(1)            # where the volume is mounted
    assert re.search(rf"SYNCBRIDGE_DAILYUP_DIR: {re.escape(folder)}$", compose, re.M)

    before_user = dockerfile.split(f"USER {user}")[0]
    assert re.search(rf"^RUN .*mkdir -p {re.escape(folder)}\b", before_user, re.M), \
        f"the Dockerfile never creates {folder}"
    owned = re.search(rf"chown -R {user}:{user} (\S+)", before_user)
    assert owned and (folder + "/").startswith(owned.group(1).rstrip("/") + "/"), f"{folder} does not belong to {user}"
