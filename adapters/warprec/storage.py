"""Ray's ``StorageContext`` for a trial that runs in this process: files go straight to the storage directory.

Imported only when a Ray Tune trial is built (it imports Ray).
"""

from __future__ import annotations

import pyarrow.fs
from ray.train._internal.storage import StorageContext


class LocalStorageContext(StorageContext):
    """Ray Tune's own ``StorageContext``, staging the driver's files in the storage directory itself.

    Tune stages what its logger callbacks write (``params.json``, ``result.json``, ``progress.csv``,
    event files) in the Ray session's temporary directory and copies it to
    ``{storage_path}/{experiment}/{trial}`` in the background. A Lightning run has no Ray session and
    no background copy: the callbacks write to the final place directly, so ``trial.local_path`` equals
    ``trial.path``. Only local storage paths are accepted.

    Examples:
        >>> import tempfile
        >>> storage = LocalStorageContext(storage_path=tempfile.mkdtemp(), experiment_dir_name="exp")
        >>> storage.trial_dir_name = "trial"
        >>> storage.trial_driver_staging_path == storage.trial_fs_path
        True
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.storage_filesystem, pyarrow.fs.LocalFileSystem):
            raise ValueError(
                f"Ray Tune storage under a Lightning run must be a local directory, got the "
                f"{self.storage_filesystem.type_name} filesystem; pass RunConfig(storage_path=<a local path>)"
            )

    @property
    def experiment_driver_staging_path(self) -> str:
        return self.experiment_fs_path

    @property
    def trial_working_directory(self) -> str:
        return self.trial_fs_path
