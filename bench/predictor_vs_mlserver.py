"""The same LightGBM model served by Flywheel's predictor and by MLServer 1.7, one run.

    .venv/bin/python bench/predictor_vs_mlserver.py [--reps 3] [--duration 3]

Needs the local stack (Kafka, Redis) for the predictor, and MLServer in its own
virtualenv (never in the workspace)::

    uv venv --python 3.11 .flywheel/bench/mlserver-venv
    VIRTUAL_ENV=.flywheel/bench/mlserver-venv uv pip install \
        mlserver==1.7.1 mlserver-lightgbm==1.7.1 "uvloop<0.22"

(MLServer 1.7.1's inference workers crash at start with uvloop >= 0.22.)

Both servers run as their own processes with default settings (the predictor with its
prediction cache, predictions.log and schema checks all on; MLServer with its default
single inference worker). One open-loop load generator (predictor_loadgen.py, its
own process) drives both, interleaved at every point so both see the same machine:

* single-row p50/p99 at 100, 500 and 1000 req/s;
* the maximum rate with p99 <= 10 ms and no errors (a ladder of rates);
* 100-row batches at 20 and 100 req/s;
* beside them, the HTTP floor: a bare ASGI app on the predictor's own uvicorn stack
  (predictor_floor_app.py) at the single-row rates, i.e. what any request costs here.

Every point is repeated ``--reps`` times; the medians are reported and written to
bench/results/predictor_vs_mlserver.json with the raw runs and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import lightgbm as lgb
import numpy as np
from aiokafka.admin import AIOKafkaAdminClient

from flywheel.events import ModelVersion
from flywheel.kafka import KafkaConfig, ensure_topics
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import (
    ModelCache,
    RegistryView,
    announcement,
    champion_change,
    publish_registry_records,
)
from flywheel.tasks import FeatureSpec, FeatureType, Objective
from flywheel.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[1]
MLSERVER = ROOT / ".flywheel" / "bench" / "mlserver-venv" / "bin" / "mlserver"
LOADGEN = ROOT / "bench" / "predictor_loadgen.py"
RESULTS = ROOT / "bench" / "results" / "predictor_vs_mlserver.json"
TASK = "bench.lightgbm"
FEATURES = [f"f{i}" for i in range(8)]
SINGLE_RATES = (100, 500, 1000)
LADDER = (100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000)
BATCH_RATES = (20, 100)
BATCH_ROWS = 100
JSON = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train() -> tuple[ModelVersion, np.ndarray]:
    """A realistic small model: 8 features, 100 trees of 31 leaves."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20_000, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - x[:, 3] + rng.normal(0, 0.5, len(x)) > 0).astype(float)
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 7}
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=FEATURES), num_boost_round=100)
    text = booster.model_to_string()
    version = ModelVersion(
        task=TASK,
        version=1,
        objective=Objective.BINARY,
        model_text=text,
        model_sha256=ModelVersion.hash_text(text),
        feature_schema=tuple(FeatureSpec(name=n, type=FeatureType.FLOAT) for n in FEATURES),
        trees=booster.num_trees(),
        events_trained=len(x),
    )
    return version, rng.normal(size=(2_000, len(FEATURES)))


def flywheel_body(rows: np.ndarray) -> str:
    if len(rows) == 1:
        return json.dumps({"features": dict(zip(FEATURES, rows[0].tolist(), strict=True))})
    return json.dumps({"rows": [dict(zip(FEATURES, r.tolist(), strict=True)) for r in rows]})


def mlserver_body(rows: np.ndarray) -> str:
    tensor = {
        "name": "x",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]})


def wait_http(url: str, ok: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if ok(response):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {timeout_s}s")


async def publish(version: ModelVersion, kafka: KafkaConfig, redis: RedisConfig) -> None:
    await ensure_topics(kafka)
    view = RegistryView()
    change = champion_change(view, TASK, 1, kind="promotion", reason="benchmark")
    await publish_registry_records(kafka, [version, change], announce=announcement(version))
    client = connect_redis(redis)
    try:
        await ModelCache(client, key_prefix=redis.key_prefix).set_champion(version)
    finally:
        await client.aclose()


async def delete_topics(kafka: KafkaConfig) -> None:
    """Delete every Flywheel topic under ``kafka``'s (the run's own) prefix."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([kafka.topic(spec) for spec in ALL_TOPICS])
    finally:
        await admin.close()


async def cleanup(kafka: KafkaConfig, redis: RedisConfig) -> None:
    await delete_topics(kafka)
    client = connect_redis(redis)
    try:
        keys = [k async for k in client.scan_iter(match=redis.key_prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def start_flywheel(
    version: ModelVersion, workdir: Path
) -> tuple[subprocess.Popen[bytes], int, Any]:
    namespace = f"bench{uuid4().hex[:8]}"
    kafka = KafkaConfig(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        topic_prefix=namespace + ".",
    )
    redis = RedisConfig(
        url=os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"), key_prefix=namespace + ":"
    )
    asyncio.run(publish(version, kafka, redis))
    port = free_port()
    env = {
        **os.environ,
        "FLYWHEEL_TOPIC_PREFIX": kafka.topic_prefix,
        "FLYWHEEL_REDIS_KEY_PREFIX": redis.key_prefix,
        "FLYWHEEL_PREDICTOR_PORT": str(port),
        "FLYWHEEL_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "predictor.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "predictor"], env=env, stdout=log, stderr=log)
    try:
        wait_http(
            f"http://127.0.0.1:{port}/readyz",
            lambda r: r.status_code == 200 and r.json()["models"] == 1,
            timeout_s=180,
        )
    except BaseException:
        stop(process)
        asyncio.run(cleanup(kafka, redis))
        raise
    return process, port, (kafka, redis)


def start_floor() -> tuple[subprocess.Popen[bytes], int]:
    """The bare uvicorn stack (predictor_floor_app.py): the per-request floor."""
    port = free_port()
    code = (
        "import uvicorn; uvicorn.run('predictor_floor_app:app', host='127.0.0.1', "
        f"port={port}, log_level='warning', loop='uvloop', http='httptools', access_log=False)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT / "bench")
    try:
        wait_http(f"http://127.0.0.1:{port}/", lambda r: r.status_code == 200, timeout_s=60)
    except BaseException:
        stop(process)
        raise
    return process, port


def start_mlserver(version: ModelVersion, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    if not MLSERVER.exists():
        raise SystemExit(f"MLServer is not installed at {MLSERVER} (see this file's docstring)")
    models = workdir / "mlserver"
    (models / "bench").mkdir(parents=True)
    (models / "bench" / "model.bst").write_text(version.model_text)
    (models / "bench" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "bench",
                "implementation": "mlserver_lightgbm.LightGBMModel",
                "parameters": {"uri": "./model.bst", "version": "v1"},
            }
        )
    )
    port = free_port()
    (models / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "debug": False,
            }
        )
    )
    log = (workdir / "mlserver.log").open("wb")
    # Own session: MLServer forks inference workers, and stop() ends the whole group.
    process = subprocess.Popen(
        [str(MLSERVER), "start", str(models)], stdout=log, stderr=log, start_new_session=True
    )
    try:
        ready = f"http://127.0.0.1:{port}/v2/models/bench/ready"
        wait_http(ready, lambda r: r.status_code == 200, timeout_s=180)
    except BaseException:
        stop(process)
        raise
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a server this benchmark started (and, for MLServer, its worker processes)."""
    try:
        own_group = os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        own_group = False
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if own_group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by a server: its process, or its whole session if it leads one.

    On a shared machine latency depends on the neighbours; CPU per request does not,
    so it is reported beside the latencies as the load-independent cost.
    """
    tick = os.sysconf("SC_CLK_TCK")
    session = os.getsid(pid) == pid
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp session ... utime(12) stime(13).
        if int(entry.name) == pid or (session and int(fields[3]) == pid):
            total += int(fields[11]) + int(fields[12])
    return total / tick


def load(
    port: int, path: str, bodies: list[str], rate: float, duration_s: float, *, pid: int
) -> dict[str, Any]:
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "path": path,
        "bodies": bodies,
        "rate": rate,
        "duration_s": duration_s,
        "connections": 64,
    }
    cpu_before = cpu_seconds(pid)
    done = subprocess.run(
        [sys.executable, str(LOADGEN)],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=True,
        timeout=duration_s + 60,
    )
    cpu = cpu_seconds(pid) - cpu_before
    result = json.loads(done.stdout)
    result["cpu_ms_per_request"] = round(cpu * 1000 / max(result["ok"], 1), 3)
    lat = np.asarray(result.pop("latencies_ms") or [float("inf")])
    result.update(
        rate=rate,
        p50_ms=round(float(np.percentile(lat, 50)), 3),
        p99_ms=round(float(np.percentile(lat, 99)), 3),
    )
    return result


def median_point(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "cpu_ms_per_request": statistics.median(r["cpu_ms_per_request"] for r in runs),
        "runs": runs,
    }


def max_rate(
    port: int, path: str, bodies: list[str], duration_s: float, pid: int
) -> tuple[float, list[Any]]:
    """The highest ladder rate with p99 <= 10 ms and no errors."""
    best = 0.0
    steps = []
    for rate in LADDER:
        point = load(port, path, bodies, rate, duration_s, pid=pid)
        steps.append(point)
        if point["errors"] or point["p99_ms"] > 10.0:
            break
        best = rate
    return best, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point")
    args = parser.parse_args()
    version, rows = train()
    single = {
        "flywheel": [flywheel_body(rows[i : i + 1]) for i in range(500)],
        "mlserver": [mlserver_body(rows[i : i + 1]) for i in range(500)],
    }
    batch = {
        "flywheel": [flywheel_body(rows[i : i + BATCH_ROWS]) for i in range(0, 1_000, BATCH_ROWS)],
        "mlserver": [mlserver_body(rows[i : i + BATCH_ROWS]) for i in range(0, 1_000, BATCH_ROWS)],
    }
    paths = {"flywheel": f"/v1/tasks/{TASK}/predict", "mlserver": "/v2/models/bench/infer"}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        workdir = Path(tmp)
        fw_process, fw_port, namespace = start_flywheel(version, workdir)
        processes = [fw_process]
        try:
            ml_process, ml_port = start_mlserver(version, workdir)
            processes.append(ml_process)
            floor_process, floor_port = start_floor()
            processes.append(floor_process)
            ports = {"flywheel": fw_port, "mlserver": ml_port}
            pids = {"flywheel": fw_process.pid, "mlserver": ml_process.pid}
            floor_runs: dict[str, list[Any]] = {}
            # Same model, same answer: the comparison is of serving, not of models.
            fw = httpx.post(
                f"http://127.0.0.1:{fw_port}{paths['flywheel']}",
                content=single["flywheel"][0],
                headers=JSON,
            ).json()
            ml = httpx.post(
                f"http://127.0.0.1:{ml_port}{paths['mlserver']}",
                content=single["mlserver"][0],
                headers=JSON,
            ).json()
            assert abs(fw["score"] - ml["outputs"][0]["data"][0]) < 1e-9, (fw, ml)
            for name, port in ports.items():  # warm both: connections, caches, allocators
                load(port, paths[name], single[name], 200, 1.0, pid=pids[name])
            raw: dict[str, Any] = {n: {"single": {}, "batch": {}, "max": []} for n in ports}
            for _ in range(args.reps):
                for rate in SINGLE_RATES:
                    floor_runs.setdefault(str(rate), []).append(
                        load(
                            floor_port,
                            "/",
                            single["flywheel"],
                            rate,
                            args.duration,
                            pid=floor_process.pid,
                        )
                    )
                    for name, port in ports.items():
                        point = load(
                            port, paths[name], single[name], rate, args.duration, pid=pids[name]
                        )
                        raw[name]["single"].setdefault(str(rate), []).append(point)
                for rate in BATCH_RATES:
                    for name, port in ports.items():
                        point = load(
                            port, paths[name], batch[name], rate, args.duration, pid=pids[name]
                        )
                        raw[name]["batch"].setdefault(str(rate), []).append(point)
                for name, port in ports.items():
                    best, steps = max_rate(
                        port, paths[name], single[name], args.duration, pids[name]
                    )
                    raw[name]["max"].append({"max_rate": best, "steps": steps})
        finally:
            for process in processes:
                stop(process)
            asyncio.run(cleanup(*namespace))
    summary: dict[str, Any] = {}
    for name, data in raw.items():
        summary[name] = {
            "single": {rate: median_point(runs) for rate, runs in data["single"].items()},
            "batch_100_rows": {rate: median_point(runs) for rate, runs in data["batch"].items()},
            "max_rate_p99_le_10ms": statistics.median(m["max_rate"] for m in data["max"]),
            "max_runs": data["max"],
        }
    summary["http_floor"] = {
        "single": {rate: median_point(runs) for rate, runs in floor_runs.items()}
    }
    # MLServer may hold p99 <= 10 ms at no rung at all (not even 100 req/s); then the
    # ratio is unbounded and reported as None rather than as a made-up number.
    ml_max = summary["mlserver"]["max_rate_p99_le_10ms"]
    ratio = summary["flywheel"]["max_rate_p99_le_10ms"] / ml_max if ml_max else None
    report = {
        "benchmark": "predictor_vs_mlserver",
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "model": {"trees": version.trees, "features": len(FEATURES), "num_leaves": 31},
        "reps": args.reps,
        "duration_s": args.duration,
        "load_generator": "open loop, 64 keep-alive connections, latency from scheduled send",
        "targets": {"p99_ms_at_500": 2.0, "max_rate_ratio_vs_mlserver": 2.0},
        "max_rate_ratio": None if ratio is None else round(ratio, 2),
        "results": summary,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    _print(report)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _print(report: dict[str, Any]) -> None:
    results = report["results"]
    print(f"machine: {report['machine']['cpus']} CPUs, {report['machine']['cpu']}")
    print(f"medians of {report['reps']} runs of {report['duration_s']}s per point")
    print("latency p50 / p99 ms (server CPU ms per request)")
    print(f"{'scenario':<28}{'flywheel':>24}{'mlserver':>24}")
    for kind, label in (("single", "single row"), ("batch_100_rows", "100-row batch")):
        for rate in results["flywheel"][kind]:
            fw, ml = results["flywheel"][kind][rate], results["mlserver"][kind][rate]
            name = f"{label} @ {rate} req/s"
            fw_cell = f"{fw['p50_ms']:.2f} / {fw['p99_ms']:.2f} ({fw['cpu_ms_per_request']:.2f})"
            ml_cell = f"{ml['p50_ms']:.2f} / {ml['p99_ms']:.2f} ({ml['cpu_ms_per_request']:.2f})"
            print(f"{name:<28}{fw_cell:>24}{ml_cell:>24}")
    for rate, point in results["http_floor"]["single"].items():
        cell = f"{point['p50_ms']:.2f} / {point['p99_ms']:.2f} ({point['cpu_ms_per_request']:.2f})"
        print(f"{'HTTP floor @ ' + rate + ' req/s':<28}{cell:>24}")
    fw_max = results["flywheel"]["max_rate_p99_le_10ms"]
    ml_max = results["mlserver"]["max_rate_p99_le_10ms"]
    ratio = report["max_rate_ratio"]
    versus = (
        f"ratio {ratio}x"
        if ratio is not None
        else f"mlserver held p99 <= 10 ms at no rung from {LADDER[0]} req/s up"
    )
    print(f"max req/s with p99 <= 10 ms: flywheel {fw_max:.0f}, mlserver {ml_max:.0f} ({versus})")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
