"""The ``callbridge`` command's config saving: LightningCLI's ``SaveConfigCallback`` that never replaces a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.cli import SaveConfigCallback


class SaveConfigNextToLogs(SaveConfigCallback):
    """Saves the resolved config in the run's log directory without replacing any file there.

    The directory is ``trainer.log_dir`` (the logger's version folder, or ``default_root_dir`` without a logger).
    The file is ``config.yaml``; when a file of that name is already there (the user's own config, an earlier
    run's), it is ``config-1.yaml``, ``config-2.yaml``, ... Global rank zero picks the name and broadcasts it.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from callbridge.adapters.save_config import free_file_name
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "config.yaml").write_text("trainer: {max_epochs: 3}")
        >>> free_file_name(folder, "config.yaml")
        'config-1.yaml'
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if not self.already_saved and self.save_to_log_dir and trainer.log_dir is not None:
            name = free_file_name(Path(trainer.log_dir), self.config_filename) if trainer.is_global_zero else ""
            self.config_filename = trainer.strategy.broadcast(name)
        super().setup(trainer, pl_module, stage)


def free_file_name(folder: Path, name: str) -> str:
    """``name``, or ``stem-N.suffix`` with the smallest N >= 1 naming no existing file in ``folder``."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, number = name, 0
    while (folder / candidate).exists():
        number += 1
        candidate = f"{stem}-{number}{suffix}"
    return candidate
