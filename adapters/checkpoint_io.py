"""A Lightning ``CheckpointIO`` plugin: atomic writes, and ``.safetensors`` checkpoints that resume training."""

from __future__ import annotations

from typing import Any

from callbridge.callbacks.serialization import (
    CheckpointFileError,
    checkpoint_format,
    load_checkpoint_file,
    save_checkpoint_file,
)
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH


class CallbridgeCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with atomic local writes and a safetensors format chosen by extension.

    * A path ending in ``.safetensors`` is written as a safetensors file holding every tensor of
      Lightning's checkpoint (model, optimizer state, loop and callback state); the rest of the
      checkpoint (dict/list structure, numbers, strings) is JSON in the file's metadata. Loading it
      never unpickles anything, and ``trainer.fit(ckpt_path="x.safetensors")`` resumes from it.
    * Any other local path is written with ``torch.save``, to a temporary file renamed over the target,
      so a process killed mid-save leaves the previous checkpoint intact.
    * Remote paths (``s3://`` ...) go through Lightning's own implementation.

    The Lightning bridge installs it on the trainer's strategy at setup when the strategy still has
    Lightning's default ``TorchCheckpointIO``; to use it without the bridge pass it as a plugin.

    Examples:
        >>> import lightning as L
        >>> from callbridge.adapters.checkpoint_io import CallbridgeCheckpointIO
        >>> trainer = L.Trainer(plugins=[CallbridgeCheckpointIO()], logger=False)
        >>> # trainer.save_checkpoint("model.safetensors"); trainer.fit(model, ckpt_path="model.safetensors")
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            if checkpoint_format(path) == "safetensors":
                raise ValueError(
                    f"{type(self).__name__}: safetensors checkpoints are written to local paths only: {path}"
                )
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        save_checkpoint_file(checkpoint, path)

    def load_checkpoint(
        self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Loads ``path``, verifying the content hash of a file callbridge wrote first.

        ``weights_only=None`` (what ``trainer.fit(ckpt_path=...)`` passes unless told otherwise) loads a
        ``.pt`` file callbridge wrote with ``weights_only=False``, so that hyperparameters and callback state
        of any type resume; any other ``.pt`` file gets torch's default. A file that is damaged, truncated, or
        not a Lightning training checkpoint raises `CheckpointFileError`.
        """
        if not _is_local_file_protocol(path):
            if map_location is None:
                return super().load_checkpoint(path, weights_only=weights_only)
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        checkpoint = load_checkpoint_file(path, map_location, weights_only=weights_only)
        if not isinstance(checkpoint, dict) or "pytorch-lightning_version" not in checkpoint:
            keys = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
            raise CheckpointFileError(
                path,
                f"not a Lightning training checkpoint (found {keys}; no 'pytorch-lightning_version'), so a run cannot "
                "resume from it; to load bare weights use model.load_state_dict(...) on what the file holds",
            )
        return checkpoint
