"""The same mining job, unchanged, on a Spark Connect server (``sc://``) gives DuckDB's counts.

The test starts pyspark's own Connect server on loopback (local[2] behind it), mines a log with a
relative path from another working directory, and stops the server.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (java not found on PATH)", allow_module_level=True)
START = Path(pyspark.__file__).parent / "sbin" / "start-connect-server.sh"
if not START.exists():
    pytest.skip(f"pyspark has no Connect server script at {START}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("connect")
    port = _free_port()
    env = dict(os.environ, SPARK_NO_DAEMONIZE="1", SPARK_LOG_DIR=str(tmp), SPARK_PID_DIR=str(tmp),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    conf = {
        "spark.connect.grpc.binding.port": port,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
    }
    args = ["bash", str(START), "--master", "local[2]"]
    for k, v in conf.items():
        args += ["--conf", f"{k}={v}"]
    with open(tmp / "server.log", "wb") as log:
        server = subprocess.Popen(args, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Spark Connect server did not start: {(tmp / 'server.log').read_text()[-2000:]}")
                time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_connect_counts_equal_duckdb(connect_url, tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "logs").mkdir()
    with open(tmp_path / "logs" / "log.csv", "w") as fh:
        fh.write("user,item,label\n")
        for _ in range(3000):
            fh.write(f"{rng.zipf(1.3) % 200},{rng.zipf(1.5) % 500},{int(rng.random() < 0.3)}\n")
    client = tmp_path / "client"
    client.mkdir()
    script = textwrap.dedent(
        f"""
        from learned_hash import mine
        kw = dict(features=["user", "item"], label="label", pairs=[("user", "item")], format="csv")
        on_duckdb = mine("../logs/log.csv", **kw)
        on_connect = mine("../logs/log.csv", engine="spark", spark_master={connect_url!r}, **kw)
        assert on_connect.engine == "spark" and on_connect.n_rows == 3000
        assert on_connect == on_duckdb
        print("equal")
        """
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    res = subprocess.run([sys.executable, "-c", script], cwd=client, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("equal")
