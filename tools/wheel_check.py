"""Builds a wheel from the repo, installs it into a fresh venv and runs the quickstart there (make wheel-check).

The fresh venv reuses the dependencies already installed for this interpreter (a ``.pth`` file lists their
site-packages, as ``--system-site-packages`` would), so nothing is downloaded: the wheel is installed with
``--no-deps --no-index``. Checked: the wheel holds every package of the source tree (``callbridge``,
``callbridge.callbacks``, ``callbridge.adapters`` and their subpackages) and the ``py.typed`` markers;
``import callbridge`` in the venv loads the wheel's code, not the checkout's; ``callbridge --version``
prints the version of ``pyproject.toml``; the ``python`` blocks of ``docs/quickstart.md`` run.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "callbridge": ROOT / "callbridge",
    "callbridge/callbacks": ROOT / "callbacks",
    "callbridge/adapters": ROOT / "adapters",
}


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise SystemExit(
            f"wheel_check: {' '.join(map(str, command))} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc


def source_files() -> list[str]:
    """The checkout's files as a clone would have them: tracked or new, not ignored, not deleted."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout.splitlines()
    return [name for name in dict.fromkeys(listed) if (ROOT / name).is_symlink() or (ROOT / name).is_file()]


def copy_tree(names: list[str], target: Path) -> None:
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name, follow_symlinks=False)


def expected_files(names: list[str]) -> set[str]:
    """``callbridge/...`` paths of every package module and ``py.typed`` marker in the source tree."""
    files = set()
    for name in names:
        path = ROOT / name
        for installed, folder in SOURCES.items():
            inside = path.parent == folder or (installed != "callbridge" and folder in path.parents)
            if inside and (path.suffix == ".py" or path.name == "py.typed"):
                files.add(f"{installed}/{path.relative_to(folder).as_posix()}")
    return files


def quickstart_code() -> str:
    text = (ROOT / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    if not blocks:
        raise SystemExit("wheel_check: docs/quickstart.md has no ```python block")
    return "\n\n".join(blocks)


def main() -> int:
    started = time.perf_counter()
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    with tempfile.TemporaryDirectory(prefix="callbridge-wheel-") as tmp:
        tmp_path = Path(tmp)
        names = source_files()
        copy_tree(names, tmp_path / "src")  # a clean tree: no build/ left over from an earlier build
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp]
        run([*pip_wheel, str(tmp_path / "src")])
        (wheel,) = tmp_path.glob("callbridge-*.whl")
        in_wheel = set(zipfile.ZipFile(wheel).namelist())
        missing = expected_files(names) - in_wheel
        if missing:
            raise SystemExit(f"wheel_check: {wheel.name} lacks {sorted(missing)} (packages are found by setup.py)")
        print(f"wheel_check: built {wheel.name} ({len(in_wheel)} files, every package of the source tree)")

        env_dir = tmp_path / "venv"
        venv.EnvBuilder(with_pip=False).create(env_dir)
        python = env_dir / "bin" / "python"
        purelib = Path(
            run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        )
        reused = [
            p
            for p in (*site.getsitepackages(), sysconfig.get_paths()["purelib"], *sys.path)
            if p.endswith("site-packages")
        ]
        (purelib / "_reused_dependencies.pth").write_text("\n".join(dict.fromkeys(reused)) + "\n")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "-q",
                "--no-deps",
                "--no-index",
                str(wheel),
            ]
        )

        work = tmp_path / "run"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["KERAS_BACKEND"] = "torch"
        where = run(
            [str(python), "-I", "-c", "import callbridge; print(callbridge.__file__)"], cwd=work, env=env
        ).stdout.strip()
        if not Path(where).is_relative_to(purelib):
            raise SystemExit(f"wheel_check: the venv imported callbridge from {where}, not from the wheel in {purelib}")
        shown = run([str(env_dir / "bin" / "callbridge"), "--version"], cwd=work, env=env).stdout.strip()
        if shown != f"callbridge {version}":
            raise SystemExit(f"wheel_check: callbridge --version printed {shown!r}, pyproject.toml says {version}")
        script = work / "quickstart.py"
        script.write_text(quickstart_code())
        out = run([str(python), "-I", str(script)], cwd=work, env=env).stdout
        if "trained" not in out:
            raise SystemExit(f"wheel_check: the quickstart printed no result:\n{out}")
    print(f"wheel_check: OK: {shown} from the wheel ran docs/quickstart.md ({time.perf_counter() - started:.0f} s)")
    print("  " + out.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
