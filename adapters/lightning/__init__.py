"""The Lightning bridge: the one part of callbridge that touches Lightning.

* [`to_lightning`][to_lightning] (``api``): Lightning callbacks for callbacks of every registered style;
* [`LightningBridge`][LightningBridge] (``bridge``): one Lightning callback mapping Lightning's hooks onto unified
  hooks;
* `LightningContext` (``context``): the only code that reads the trainer's state;
* ``sync``: the multi-device agreement on stop, learning rate and weights;
* ``relay``: unified ``on_epoch_end`` after the LightningModule's own ``on_train_epoch_end``.
"""

from callbridge.adapters.lightning.api import to_lightning
from callbridge.adapters.lightning.bridge import UNIFIED_HOOK_MAP, LightningBridge
from callbridge.adapters.lightning.context import LightningContext
from callbridge.adapters.lightning.relay import EpochEndRelay

__all__ = ["UNIFIED_HOOK_MAP", "EpochEndRelay", "LightningBridge", "LightningContext", "to_lightning"]
