"""The image can write its volumes (DailyUp, metrics): their folders exist and belong to the user the image runs as."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("volume", "setting"), [("dailyup", "SYNCBRIDGE_DAILYUP_DIR"),
                                                  ("metrics", "PROMETHEUS_MULTIPROC_DIR")])
def test_the_image_creates_each_volume_folder_for_its_user(volume, setting):
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    user = re.search(r"^USER (\S+)$", dockerfile, re.M).group(1)
    folder = re.search(rf"\b{volume}:(/[^\s\],]+)", compose).group(1)            # where the volume is mounted
    assert re.search(rf"{setting}: {re.escape(folder)}\b", compose, re.M)
    assert re.search(rf"^  {volume}:$", compose, re.M), f"the volume {volume} is not declared"

    before_user = dockerfile.split(f"USER {user}")[0]
    assert re.search(rf"^RUN .*mkdir -p (\S+ )*{re.escape(folder)}\b", before_user, re.M), \
        f"the Dockerfile never creates {folder}"
    owned = re.search(rf"chown -R {user}:{user} (\S+)", before_user)
    assert owned and (folder + "/").startswith(owned.group(1).rstrip("/") + "/"), f"{folder} does not belong to {user}"
