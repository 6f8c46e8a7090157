"""LoggingCallback against a real MLflow tracking server (``mlflow server`` on 127.0.0.1) that goes away: training
never blocks or stops, the outage is reported within seconds, and no value is lost (after ``callbridge sync``
when the server never comes back).

Starting ``mlflow server`` takes tens of seconds on a loaded machine, so one server serves the module. The outage
that ends is made with a TCP proxy in front of it, which refuses and cuts every connection while it is down
(what a client sees of a dead server) and listens again at once; the outage that never ends kills the server
process itself (SIGKILL), which is why that test comes last.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from callbridge.adapters import to_lightning
from callbridge.adapters.cli import main as cli_main
from callbridge.callbacks import Callback, LoggingCallback
from callbridge.callbacks.metric_logging import StoreWarning
from mlflow import MlflowClient
from toy import ToyRegression, make_trainer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real ``mlflow server`` process with a sqlite backend store."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_uri = f"sqlite:///{root / 'srv.db'}"
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--backend-store-uri", self.db_uri, "--default-artifact-root", str(root / "art"), "--workers", "1"]
        self.log = (root / "server.log").open("w")
        # its own session: the server's uvicorn workers are stopped with it, by process group
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )

    def wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def tail(self) -> str:
        return (self.root / "server.log").read_text()[-3000:]


class TcpProxy:
    """Forwards a port of its own to ``target_port``; `down` refuses new connections and cuts the open
    ones (what a client sees of a dead server), `up` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target, self.port = target_port, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        with self._lock:
            sockets, self._open = [listener, *self._open], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                if self._listener is not listener:
                    return
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(autouse=True)
def no_tracking_uri_from_the_environment(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.kill(signal.SIGTERM)
        server.log.close()


class At(Callback):
    """Runs ``actions[step]()`` at the end of that training step."""

    def __init__(self, **actions) -> None:
        self.actions = {int(step.removeprefix("step")): action for step, action in actions.items()}

    def on_step_end(self, ctx) -> None:
        action = self.actions.get(ctx.step)
        if action is not None:
            action()


def stored_counts(client: MlflowClient, run_id: str) -> dict[str, int]:
    run = client.get_run(run_id)
    return {key: len(client.get_metric_history(run_id, key)) for key in run.data.metrics}


def store_messages(recwarn) -> list[str]:
    return [str(w.message) for w in recwarn if issubclass(w.category, StoreWarning)]


def fault_line(name: str, logged: dict[str, int], stored: dict[str, int]) -> str:
    values, kept = sum(logged.values()), sum(stored.get(key, 0) for key in logged)
    return f"[store faults] {name}: values logged {values}, stored {kept}, lost {values - kept}"


def test_mlflow_server_holds_every_value(server, tmp_path):
    callback = LoggingCallback(
        ["mlflow"], log_steps=2, save_dir=tmp_path, tracking_uri=server.url, experiment_name="remote"
    )
    trainer = make_trainer(to_lightning([callback]), max_epochs=2, limit_val_batches=1)
    trainer.fit(ToyRegression(n=64, batch_size=16))
    assert not (tmp_path / "mlflow.db").exists()  # the tracking URI replaced the local store
    client = MlflowClient(tracking_uri=server.url)
    run = client.get_run(callback.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "remote"
    assert stored_counts(client, callback.mlflow_run_id) == callback.logged
    assert [m.step for m in client.get_metric_history(callback.mlflow_run_id, "train_loss_step")] == [1, 3, 5, 7]
    assert run.data.params["lr"] == "0.05"


def test_an_outage_is_reported_and_loses_nothing(server, tmp_path, recwarn):
    proxy = TcpProxy(server.port)
    callback = LoggingCallback(
        ["mlflow", "csv"],
        log_steps=1,
        save_dir=tmp_path,
        tracking_uri=proxy.url,
        store_timeout=2.0,
        retry_seconds=0.2,
        close_timeout=30.0,
    )
    marks: dict[str, float] = {}

    def mark(name, action=None):
        def run():
            marks[name] = time.monotonic()
            if action is not None:
                action()

        return run

    def wait_for(text):  # training goes on meanwhile in the stores' threads; this step just waits to look
        def run():
            deadline = time.monotonic() + 60
            while not any(text in m for m in store_messages(recwarn)) and time.monotonic() < deadline:
                time.sleep(0.05)
            marks[text] = time.monotonic()

        return run

    at = At(
        step2=mark("down", proxy.down),
        step3=wait_for("is not answering"),
        step10=mark("up", proxy.up),
        step11=wait_for("answers again"),
    )
    trainer = make_trainer(to_lightning([callback, at]), max_epochs=4, limit_val_batches=1)  # 16 steps
    trainer.fit(ToyRegression(n=64, batch_size=16))
    proxy.down()
    # reported while training ran: once when it went away, once when it answered again
    messages = store_messages(recwarn)
    assert len(messages) == 2 and "is not answering" in messages[0] and "answers again" in messages[1]
    assert str(callback.spool_path) in messages[0]
    print(
        f"[store faults] outage reported {marks['is not answering'] - marks['down']:.1f} s after it began "
        f"(store_timeout {callback.store_timeout:g} s), recovery {marks['answers again'] - marks['up']:.1f} s after"
    )
    client = MlflowClient(tracking_uri=server.url)
    stored = stored_counts(client, callback.mlflow_run_id)
    print(fault_line("outage from step 2 to step 10", callback.logged, stored))
    assert stored == callback.logged  # every value, none twice
    assert client.get_run(callback.mlflow_run_id).info.status == "FINISHED"
    assert callback.unsent == [] and not callback.spool_path.exists()


def test_a_store_unreachable_at_setup_is_named_at_once_and_synced_later(server, tmp_path, recwarn, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    callback = LoggingCallback(
        ["mlflow"],
        log_steps=2,
        save_dir=tmp_path,
        tracking_uri=url,
        run_name="unreachable",
        store_timeout=2.0,
        close_timeout=0.5,
    )
    before_training: list[str] = []
    probe = At(step1=lambda: before_training.extend(store_messages(recwarn)))
    trainer = make_trainer(to_lightning([callback, probe]), max_epochs=2, limit_val_batches=1)
    trainer.fit(ToyRegression(n=64, batch_size=16))
    assert len(before_training) == 1 and f"MLflow at {url} is not reachable" in before_training[0]
    spool = callback.spool_path
    assert spool.exists() and len(callback.unsent) == 1
    assert f"callbridge sync {callback.run_dir}" in callback.unsent[0] and str(spool) in callback.unsent[0]
    assert any("callbridge sync" in m for m in store_messages(recwarn))
    # later, into another store (the module's server): everything, once, with the run's final status
    target = server.url
    capsys.readouterr()
    assert cli_main(["sync", str(tmp_path), "--tracking-uri", target]) == 0
    out = capsys.readouterr().out
    assert f"{sum(callback.logged.values())} values" in out and "status FINISHED" in out
    client = MlflowClient(tracking_uri=target)
    experiment = client.get_experiment_by_name("callbridge")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'unreachable'")
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.05"
    assert stored_counts(client, run.info.run_id) == callback.logged
    assert not spool.exists()
    assert cli_main(["sync", str(tmp_path)]) == 0 and "nothing to send" in capsys.readouterr().out


def test_the_server_killed_for_good_loses_nothing_after_sync(server, tmp_path, recwarn, capsys):
    """Kills the module's server: keep this test last."""
    callback = LoggingCallback(
        ["mlflow"],
        log_steps=1,
        save_dir=tmp_path,
        tracking_uri=server.url,
        store_timeout=2.0,
        retry_seconds=0.2,
        close_timeout=1.0,
    )

    def kill_once_the_run_exists():
        deadline = time.monotonic() + 60
        while callback.mlflow_run_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()

    trainer = make_trainer(to_lightning([callback, At(step3=kill_once_the_run_exists)]), max_epochs=3)
    trainer.fit(ToyRegression(n=64, batch_size=16))  # 12 steps; the dead store neither blocks nor stops it
    assert callback.flush_seconds < callback.close_timeout + 5  # the bounded wait at the end
    messages = store_messages(recwarn)
    assert any("is not answering" in m for m in messages)
    assert len(callback.unsent) == 1 and callback.spool_path.exists()
    client = MlflowClient(tracking_uri=server.db_uri)  # the dead server's own store
    run = client.get_run(callback.mlflow_run_id)
    before = stored_counts(client, run.info.run_id)
    assert run.info.status == "RUNNING"  # the server died before it could be told
    print(fault_line("server killed at step 3, before sync", callback.logged, before))
    assert sum(before.values()) < sum(callback.logged.values())
    assert cli_main(["sync", str(callback.run_dir), "--tracking-uri", server.db_uri]) == 0
    after = stored_counts(client, run.info.run_id)
    print(fault_line("server killed at step 3, after callbridge sync", callback.logged, after))
    assert after == callback.logged
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert not callback.spool_path.exists()
