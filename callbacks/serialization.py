"""Checkpoint files: atomic writes, and two formats chosen by the file name.

* ``.safetensors``: every tensor of the checkpoint goes into a `safetensors <https://huggingface.co/docs/safetensors>`_
  file; the structure around them (nested dicts, lists, tuples, numbers, strings) is stored as JSON in the
  file's metadata under the key ``callbridge.structure``. Loading it never unpickles anything.
* anything else (``.pt``, ``.ckpt``, ...): `torch.save`.

Each file carries a SHA-256 of its content (safetensors: every tensor and the structure, in the metadata
key ``callbridge.sha256``; ``torch.save`` files: every record of the zip archive, in an extra record
``<archive>/callbridge_sha256``). Loading verifies it before anything is unpickled, and a file that does not
match, or is truncated, raises `CheckpointFileError` naming it.

Both are written to a temporary file in the target folder, flushed to disk, then renamed over the target
with `os.replace`, so a process killed mid-write leaves the previous file intact.

Nothing here imports Lightning: the plain-loop [`CallbackContext.save_checkpoint`][CallbackContext.save_checkpoint] and
the Lightning ``CheckpointIO`` plugin
([`callbridge.adapters.checkpoint_io.CallbridgeCheckpointIO`][callbridge.adapters.checkpoint_io.CallbridgeCheckpointIO])
both use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import stat
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from zipfile import BadZipFile, ZipFile, is_zipfile

import torch

#: File formats and the extension each is written with.
FORMATS: dict[str, str] = {"pt": ".pt", "safetensors": ".safetensors"}

_STRUCTURE_KEY = "callbridge.structure"
_VERSION_KEY = "callbridge.version"
_VERSION = "1"
_HASH_KEY = "callbridge.sha256"
_PT_HASH_RECORD = "callbridge_sha256"
_MISMATCH = "content hash mismatch: the file was changed or damaged after callbridge wrote it; do not resume from it"


class CheckpointFileError(ValueError):
    """A checkpoint file cannot be used: truncated, corrupt (its content hash does not match), or not a
    checkpoint. The message names the file.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from callbridge.callbacks.serialization import CheckpointFileError, load_checkpoint_file
        >>> path = Path(tempfile.mkdtemp()) / "last.safetensors"
        >>> _ = path.write_bytes(b"truncated")
        >>> try:
        ...     load_checkpoint_file(path)
        ... except CheckpointFileError as error:
        ...     print(error.path == str(path), "not a readable safetensors file" in str(error))
        True True

    Attributes:
        path: the file.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        super().__init__(f"checkpoint file {self.path!r}: {reason}")


def checkpoint_format(path: str | os.PathLike[str]) -> str:
    """``"safetensors"`` for a ``.safetensors`` file name, else ``"pt"``."""
    return "safetensors" if str(path).endswith(".safetensors") else "pt"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    On an exception (or a kill) the temporary file is removed (or left as a ``.tmp`` file) and ``path``
    keeps its previous content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(target)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(tmp))  # some writers (safetensors) recreate the file 0600: give the usual mode
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint_file(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes ``checkpoint`` to ``path`` atomically, in the format its extension names."""
    if checkpoint_format(path) == "safetensors":
        from safetensors.torch import save_file

        tensors, structure = encode(checkpoint)
        text = json.dumps(structure, allow_nan=False)
        metadata = {_STRUCTURE_KEY: text, _VERSION_KEY: _VERSION, "format": "pt"}
        metadata[_HASH_KEY] = _tensors_digest(tensors, text)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    else:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
            _add_pt_digest(tmp)


def load_checkpoint_file(
    path: str | os.PathLike[str], map_location: Any = None, *, weights_only: bool | None = None
) -> dict[str, Any]:
    """Reads a checkpoint written by `save_checkpoint_file` (or any ``torch.save`` file).

    ``map_location``: a device (``"cpu"``, ``torch.device``) for safetensors files; anything
    `torch.load` accepts for the others. ``weights_only`` applies to ``torch.load`` only; a
    safetensors file never runs pickle.

    The file's content hash is verified first. ``weights_only=None`` (the default) means ``False`` for a
    ``.pt`` file that callbridge wrote (its content hash matches: it may hold callback state and
    hyperparameters of any type) and torch's own default (``True``) for any other file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFileError: the file is truncated, corrupt (its content hash does not match) or not a
            checkpoint; the message names it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if checkpoint_format(path) == "safetensors":
        return _load_safetensors(path, map_location)
    written_by_callbridge = _verify_pt(path)
    if weights_only is None:
        weights_only = not written_by_callbridge
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except RuntimeError as error:  # torch's zip reader on a damaged archive
        raise CheckpointFileError(path, f"cannot be read by torch.load: {error}") from error


def is_callbridge_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint that `save_checkpoint_file` wrote (it carries callbridge's
    content hash), without loading it; raises `CheckpointFileError` when that hash does not match."""
    path = Path(path)
    if checkpoint_format(path) == "safetensors":
        return _HASH_KEY in _safetensors_metadata(path)
    return _verify_pt(path)


def _load_safetensors(path: Path, map_location: Any) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    tensors = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                tensors[key] = handle.get_tensor(key)
    except (SafetensorError, OSError) as error:
        raise CheckpointFileError(path, f"not a readable safetensors file (truncated or corrupt?): {error}") from None
    if _HASH_KEY in metadata:
        digest = _tensors_digest(tensors, metadata.get(_STRUCTURE_KEY, ""))
        if digest != metadata[_HASH_KEY]:
            raise CheckpointFileError(
                path,
                _MISMATCH,
            )
    if str(device) != "cpu":
        tensors = {key: tensor.to(device) for key, tensor in tensors.items()}
    if _STRUCTURE_KEY not in metadata:
        # A plain safetensors file (a bare state dict, as Hugging Face writes them).
        return {"state_dict": tensors}
    return decode(json.loads(metadata[_STRUCTURE_KEY]), tensors)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointFileError(path, f"not a readable safetensors file (truncated or corrupt?): {error}") from None


def _tensors_digest(tensors: Mapping[str, torch.Tensor], structure: str) -> str:
    digest = hashlib.sha256(structure.encode())
    for key in sorted(tensors):
        tensor = tensors[key].detach()
        digest.update(f"|{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _zip_digest(archive: ZipFile) -> tuple[str, str | None]:
    """(SHA-256 of every record but callbridge's, the name of callbridge's record or None)."""
    digest, ours = hashlib.sha256(), None
    for info in archive.infolist():
        if info.filename.rsplit("/", 1)[-1] == _PT_HASH_RECORD:
            ours = info.filename
            continue
        digest.update(info.filename.split("/", 1)[-1].encode())  # the archive's folder name is the file's name
        with archive.open(info) as record:  # zipfile checks each record's CRC-32 as it reads
            for chunk in iter(lambda record=record: record.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest(), ours


def _add_pt_digest(path: Path) -> None:
    with ZipFile(path) as archive:
        digest, _ = _zip_digest(archive)
        prefix = archive.namelist()[0].split("/", 1)[0]
    with ZipFile(path, "a") as archive:
        archive.writestr(f"{prefix}/{_PT_HASH_RECORD}", digest)


def _verify_pt(path: Path) -> bool:
    """True when ``path`` carries callbridge's content hash and it matches; False for a file without one
    (written by something else, or a legacy file); `CheckpointFileError` when it is damaged."""
    try:
        with ZipFile(path) as archive:
            digest, ours = _zip_digest(archive)
            stored = archive.read(ours).decode() if ours is not None else None
    except BadZipFile as error:
        if not is_zipfile(path) and _is_legacy_torch_file(path):
            return False  # torch.save(..., _use_new_zipfile_serialization=False): no records to check
        raise CheckpointFileError(path, f"damaged (truncated or corrupt): {error}") from None
    except (OSError, EOFError) as error:
        raise CheckpointFileError(path, f"cannot be read: {error}") from None
    if stored is None:
        return False
    if stored != digest:
        raise CheckpointFileError(
            path,
            _MISMATCH,
        )
    return True


def _is_legacy_torch_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x80\x02"  # a bare pickle (protocol 2), as torch's legacy format starts


# -- the structure codec ---------------------------------------------------------------------------
# Every value becomes JSON: None, bools, ints, finite floats, strings and lists stay as they are; the
# rest is a one-key object naming its kind. Tensors are replaced by their key in the safetensors file.


def encode(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Splits ``obj`` into ``({key: tensor}, json_structure)``; `decode` reverses it."""
    tensors: dict[str, torch.Tensor] = {}
    storages: set[tuple[Any, int]] = set()

    def enc(value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, torch.Tensor):
            tensor = value.detach()
            if tensor.layout != torch.strided:
                raise TypeError(f"{where}: safetensors stores dense tensors only, got a {tensor.layout} tensor")
            tensor = tensor.contiguous()
            storage = (tensor.device, tensor.untyped_storage().data_ptr())
            if storage in storages and tensor.numel() > 0:  # safetensors refuses tensors that share memory
                tensor = tensor.clone()
            storages.add(storage)
            key = f"t{len(tensors)}"
            tensors[key] = tensor
            return {"tensor": key}
        if isinstance(value, Mapping):
            items = [[enc(k, f"{where} key {k!r}"), enc(v, f"{where}[{k!r}]")] for k, v in value.items()]
            return {"odict" if isinstance(value, OrderedDict) else "dict": items}
        if isinstance(value, list):
            return [enc(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):  # includes torch.Size
            return {"tuple": [enc(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            return {"set": [enc(v, f"{where} item") for v in sorted(value, key=repr)]}
        if isinstance(value, torch.dtype):
            return {"dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"device": str(value)}
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise TypeError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a safetensors checkpoint "
            "cannot hold (it stores tensors, numbers, strings, None and dicts/lists/tuples of them, and never "
            "pickles); use format='pt' or keep that value out of the checkpoint"
        )

    return tensors, enc(obj, "checkpoint")


def decode(structure: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The object `encode` split into ``structure`` and ``tensors``."""

    def dec(node: Any) -> Any:
        if isinstance(node, list):
            return [dec(v) for v in node]
        if not isinstance(node, dict):
            return node
        ((kind, payload),) = node.items()
        if kind == "tensor":
            return tensors[payload]
        if kind == "dict":
            return {_hashable(dec(k)): dec(v) for k, v in payload}
        if kind == "odict":
            return OrderedDict((_hashable(dec(k)), dec(v)) for k, v in payload)
        if kind == "tuple":
            return tuple(dec(v) for v in payload)
        if kind == "set":
            return {_hashable(dec(v)) for v in payload}
        if kind == "float":
            return float(payload)
        if kind == "dtype":
            return getattr(torch, payload)
        if kind == "device":
            return torch.device(payload)
        raise ValueError(f"unknown node kind {kind!r} in a callbridge safetensors checkpoint")

    return dec(structure)


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


_FILE_MODE: int | None = None


def _create_temporary(target: Path) -> Path:
    """A new empty file next to ``target``, created with mode ``0o666`` (the process umask applies, as for
    ``open(path, "w")``); never an existing file."""
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        global _FILE_MODE
        if _FILE_MODE is None:  # computed once, from the first file created, without touching the umask
            _FILE_MODE = stat.S_IMODE(os.stat(tmp).st_mode)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {target}")


def _file_mode(tmp: Path) -> int:
    return _FILE_MODE if _FILE_MODE is not None else stat.S_IMODE(os.stat(tmp).st_mode)
