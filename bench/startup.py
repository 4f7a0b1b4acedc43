"""Start-up: how long a new process takes to import the service, and workers started together to consume.

* ``import_s``: seconds a fresh interpreter takes to import what a worker and the receiver run
  (``syncbridge.bootstrap``, ``consumers.crm_to_ameise``, ``webhooks``), median of ``--rounds``
  interpreters (no bytecode written, as the environment and the image set it);
* ``ready_s_N``: seconds from starting N ``crm-to-ameise`` workers at once (the Procfile's line, on
  RabbitMQ and a PostgreSQL database of the run's own, against the simulators, after the
  release step and ``syncbridge connect ameise``) until every one of them logs that it consumes,
  for N = 1, 2 and 4, median of ``--rounds``.  Each worker runs the preflight check first, whose
  Zoho calls take a slot of the concurrency limit the workers share (``SYNCBRIDGE_ZOHO_SYNC_CONCURRENCY``).

``--before DIR`` measures a second source tree (``git archive <commit> | tar -x -C DIR``) in turn with
this one, round by round, with a database of its own.

    python bench/startup.py                       # 5 rounds (about two minutes)
    python bench/startup.py --quick               # 1 round
    python bench/startup.py --before /tmp/old     # this tree and an older one side by side

The last line: ``import_s ready_s_1 ready_s_2 ready_s_4``; with ``--before`` also the same keys with
``_before`` and ``ratio_import ratio_ready_2 ratio_ready_4`` (this tree's seconds / the other's).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crm_stack  # noqa: E402  (bench/ is the script's own folder)

IMPORTS = "import syncbridge.bootstrap, consumers.crm_to_ameise, webhooks"
WORKERS = (1, 2, 4)


def import_seconds(root: Path) -> float:
    """Seconds a fresh interpreter takes to import the service's modules from ``root``."""
    code = f"import time; started = time.perf_counter(); {IMPORTS}; print(time.perf_counter() - started)"
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def ready_seconds(env: dict[str, str], root: Path, workers: int, work: Path, tag: str) -> float:
    """Seconds from starting ``workers`` workers at once until every one consumes."""
    logs = [work / f"{tag}-worker{n}.log" for n in range(workers)]
    started = time.monotonic()
    processes = [crm_stack.start("worker-crm-to-ameise", env, log, root) for log in logs]
    try:
        crm_stack.wait_until(lambda: all("consuming from" in log.read_text() for log in logs), 120,
                             f"{workers} workers consuming", interval=0.05)
        return time.monotonic() - started
    finally:
        crm_stack.stop(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; 1 with --quick)")
    parser.add_argument("--before", type=Path, metavar="DIR", help="also measure this source tree, in turn")
    parser.add_argument("--broker-url", default=crm_stack.BROKER_URL)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    trees = {"": ROOT}
    if args.before is not None:
        trees["_before"] = args.before.resolve()

    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-startup-"))
    sims = crm_stack.Simulators(work)
    namespaces = {suffix: f"bench-startup-{uuid.uuid4().hex[:8]}" for suffix in trees}
    figures: dict[str, list[float]] = {}
    try:
        with crm_stack.database("bench_startup") as ours, crm_stack.database("bench_startup") as theirs:
            envs = {}
            for suffix, root in trees.items():
                env = crm_stack.environment(sims, theirs if suffix else ours, namespaces[suffix], args.broker_url,
                                            crm_stack.free_port())
                if suffix:
                    env["PYTHONPATH"] = str(root)
                crm_stack.release(env, root)
                envs[suffix] = env
            for number in range(rounds):
                for suffix, root in trees.items():
                    seconds = {"import_s": import_seconds(root)}
                    for workers in WORKERS:
                        seconds[f"ready_s_{workers}"] = ready_seconds(envs[suffix], root, workers, work,
                                                                      f"r{number}{suffix}n{workers}")
                    for key, value in seconds.items():
                        figures.setdefault(key + suffix, []).append(value)
                    print(f"round {number + 1}{' before' if suffix else ''}: "
                          + " ".join(f"{key}={value:.3f}" for key, value in seconds.items())
                          + f" load={os.getloadavg()[0]:.1f}", flush=True)
    finally:
        sims.stop()
        for namespace in namespaces.values():
            crm_stack.delete_queues(args.broker_url, namespace)

    summary = {key: crm_stack.median(values) for key, values in figures.items()}
    if args.before is not None:
        for key, name in (("import_s", "ratio_import"), ("ready_s_2", "ratio_ready_2"), ("ready_s_4", "ratio_ready_4")):
            summary[name] = summary[key] / summary[key + "_before"]
    print(" ".join(f"{key}={value:.3f}" for key, value in summary.items()))


if __name__ == "__main__":
    main()
