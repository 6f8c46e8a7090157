"""The differential conformance harness over real third-party Keras callbacks.

Each case runs one callback by ``keras.Model.fit/evaluate/predict`` (torch backend) and by callbridge under a real
Lightning Trainer, on the same scripted run (``callbridge.adapters.keras.conformance``), and compares hook trace,
logs, printed output, files, stop epoch, steps, learning rates, final weights, ``model.history``, exceptions and
(for MLflow and Optuna) what reached their stores. Differences that cannot be removed are listed in docs/keras.md
and passed as ``skip`` with their reason. A case is ~1 s (the first MLflow case creates its sqlite store).
"""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from callbridge.adapters.keras.conformance import compare, observe, to_text  # noqa: E402
from keras_conformance_cases import cases  # noqa: E402

_OPTIONAL = {"mlflow": "mlflow", "optuna": "optuna_integration", "tqdm": "tqdm", "keras-tuner": "keras_tuner"}


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_callback_behaves_as_under_keras_fit(case, tmp_path):
    for prefix, module in _OPTIONAL.items():
        if case.name.startswith(prefix):
            pytest.importorskip(module)
    home, bridge = observe(case.make, tmp_path, case.script, case.probe)
    checks = compare(home, bridge, case.skip)
    assert all(check.equal for check in checks), to_text(case.name, checks)
    assert home["trace"], "the harness recorded no hook call: it would compare nothing"


def test_the_harness_reports_a_difference(tmp_path):
    class NamesItsModel(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            print(type(self.model).__name__)  # ScriptedKeras at home, the proxy under callbridge

    home, bridge = observe(lambda d: NamesItsModel(), tmp_path)
    checks = {check.name: check for check in compare(home, bridge)}
    assert not checks["output"].equal and checks["hooks"].equal and checks["weights"].equal
    assert checks["output"].home == {"at": 0, "value": "ScriptedKeras"}
    assert "DIFFERENT" in to_text("NamesItsModel", list(checks.values()))
