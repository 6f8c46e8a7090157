"""What ``callbridge inspect`` reports about a Keras-style class."""

from __future__ import annotations

from callbridge.adapters.keras.detect import LIBRARY_PACKAGES, REJECTED
from callbridge.adapters.keras.model import PROXY_ATTRIBUTES
from callbridge.adapters.keras.source import model_attributes


def inspect_problems(cls: type) -> list[str]:
    """What will not work under Lightning for the Keras-style class ``cls``: a Keras callback that needs a
    real Keras model (the same list [`KerasAdapter`][KerasAdapter] rejects), and ``self.model.X`` uses that only
    work when the LightningModule has ``X``.

    Examples:
        >>> import keras
        >>> from callbridge.adapters.keras import inspect_problems
        >>> inspect_problems(keras.callbacks.TensorBoard)[0].split(" (")[0]
        'TensorBoard needs a real Keras model'
        >>> inspect_problems(keras.callbacks.EarlyStopping)
        []
    """
    problems = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in LIBRARY_PACKAGES and klass.__name__ in REJECTED:
            why, instead = REJECTED[klass.__name__]
            problems.append(f"{klass.__name__} needs a real Keras model ({why}); under Lightning use {instead}")
            break
    for attr in sorted(model_attributes(cls) - set(PROXY_ATTRIBUTES)):
        problems.append(
            f"uses self.model.{attr}: the model is a proxy of the LightningModule that provides "
            f"{', '.join(sorted(PROXY_ATTRIBUTES))}; {attr} works only if your LightningModule has it"
        )
    return problems
