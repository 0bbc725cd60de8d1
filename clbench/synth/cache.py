"""The synthetic-image cache: generated once, shared by every method, run and seed of a benchmark.

Layout under the cache root (``$CLBENCH_SYNTH_CACHE``, default ``~/.cache/clbench/synth``)::

    <backend>-<hash of the generator config>/
        generator.json                 the full generator config the folder is addressed by
        images/<k[:2]>/<k>.png         one file per (prompt, seed): k = sha256(prompt, seed)
        images/<k[:2]>/<k>.dropped     marker of an all-black (safety-checker) output, dropped as in GIFT
        manifests/<plan key>.json      per task: prompt, class, source task, seed, file, sha256; drop counts

Why this shape: an image depends only on the generator config and its (prompt, seed), so it is stored once
under exactly that address and any plan that needs it reuses it. Every file is written to a temporary name and
renamed, so a killed process leaves whole files or none; generation resumes by skipping the valid files, and a
corrupt or truncated file fails validation (PNG chunk CRCs / full decode, then the manifest's sha256) and is
generated again. Work is split in fixed chunks of the flattened plan, so an image comes from the same batch
whether the run was sharded, interrupted or not — bit-identical results on deterministic backends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from clbench.errors import UserError
from clbench.store import new_file_mode, write_atomic, write_error
from clbench.synth.base import ImageGenerator
from clbench.synth.prompts import Plan, PlanEntry

MANIFEST_FORMAT = 1
FORMATS = {"png": "PNG", "jpeg": "JPEG"}


def default_root() -> Path:
    """``$CLBENCH_SYNTH_CACHE``, else ``$XDG_CACHE_HOME/clbench/synth``, else ``~/.cache/clbench/synth``."""
    env = os.environ.get("CLBENCH_SYNTH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clbench" / "synth"


def config_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"a shard is i/n with integers 0 <= i < n, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"a shard is i/n with integers 0 <= i < n, got {text!r}")
    return i, n


class CorruptCacheError(RuntimeError):
    """Files of the cache do not match its manifest (they are deleted; generate again)."""


@dataclass
class GenerationReport:
    """What one :meth:`SyntheticCache.generate` call did."""

    total: int = 0  # entries of this shard
    reused: int = 0
    generated: int = 0
    dropped: int = 0  # all-black outputs dropped (new or found as markers)
    corrupt: int = 0  # invalid files found and generated again
    elsewhere: int = 0  # entries of other shards still missing
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.generated / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.total} images in this shard: {self.generated} generated ({rate:.1f} img/s), "
                f"{self.reused} reused, {self.dropped} dropped as all-black, {self.corrupt} corrupt regenerated"
                + (f"; {self.elsewhere} left to other shards" if self.elsewhere else ""))


def is_black(image: Image.Image) -> bool:
    """The safety checker's replacement image (all pixels zero)."""
    return all(hi == 0 for _, hi in image.convert("RGB").getextrema())


def _write_file(path: Path, data: bytes, made: set[Path] | None = None) -> None:
    """Atomic write without fsync: a killed process leaves the whole file or nothing (fast for many files).

    ``made`` remembers folders already created (one ``mkdir`` per folder, not per file).
    """
    tmp: str | None = None
    try:
        if made is None or path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            if made is not None:
                made.add(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), new_file_mode())
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc, len(data)) from None
        raise


class SyntheticCache:
    """Images of one generator config, addressed by (prompt, seed), plus manifests of plans."""

    def __init__(self, generator_config: dict[str, Any], root: str | Path | None = None,
                 image_format: str = "png") -> None:
        if image_format not in FORMATS:
            raise ValueError(f"image_format must be one of {', '.join(FORMATS)}")
        self.config = dict(generator_config)
        self.key = config_key(self.config)
        self.root = Path(root) if root is not None else default_root()
        self.dir = self.root / f"{self.config.get('backend', 'generator')}-{self.key}"
        self.image_format = image_format
        self._made: set[Path] = set()

    # ---- addresses --------------------------------------------------------------------------------------
    @staticmethod
    def entry_key(entry: PlanEntry) -> str:
        return hashlib.sha256(f"{entry.prompt}\n{entry.seed}".encode()).hexdigest()[:32]

    def image_path(self, entry: PlanEntry) -> Path:
        k = self.entry_key(entry)
        return self.dir / "images" / k[:2] / f"{k}.{self.image_format}"

    def dropped_path(self, entry: PlanEntry) -> Path:
        k = self.entry_key(entry)
        return self.dir / "images" / k[:2] / f"{k}.dropped"

    def manifest_path(self, plan: Plan) -> Path:
        return self.dir / "manifests" / f"{plan.key()}.json"

    # ---- state of one entry -----------------------------------------------------------------------------
    def _valid(self, path: Path) -> bool:
        try:
            with Image.open(path) as im:
                if im.format != FORMATS[self.image_format]:
                    return False
                if self.image_format == "png":
                    im.verify()  # every chunk's CRC, incl. the IEND chunk: catches truncation
                else:
                    im.load()  # PIL refuses a truncated JPEG
            return True
        except Exception:  # noqa: BLE001 - any decoding failure means "regenerate"
            return False

    def state(self, entry: PlanEntry) -> str:
        """``done``, ``dropped``, ``missing`` or ``corrupt`` (a corrupt file is deleted)."""
        if self.dropped_path(entry).exists():
            return "dropped"
        path = self.image_path(entry)
        if not path.exists():
            return "missing"
        if self._valid(path):
            return "done"
        path.unlink(missing_ok=True)
        return "corrupt"

    def _store(self, entry: PlanEntry, image: Image.Image) -> bool:
        """Write one image (or its drop marker); False when it was dropped."""
        if is_black(image):
            _write_file(self.dropped_path(entry), b"", self._made)
            return False
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format=FORMATS[self.image_format])
        _write_file(self.image_path(entry), buf.getvalue(), self._made)
        return True

    # ---- generation -------------------------------------------------------------------------------------
    @staticmethod
    def chunks(plan: Plan, batch_size: int) -> list[list[PlanEntry]]:
        flat = plan.flat()
        return [flat[i:i + batch_size] for i in range(0, len(flat), batch_size)]

    def generate(self, plan: Plan, make_generator: Callable[[], ImageGenerator], batch_size: int = 8,
                 shard: tuple[int, int] = (0, 1), progress: bool = True, desc: str = "synth") -> GenerationReport:
        """Generate this shard's missing images; the generator is built only if something is missing."""
        index, count = shard
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._write_generator_config()
        report = GenerationReport()
        todo: list[tuple[list[PlanEntry], list[bool]]] = []
        for c, chunk in enumerate(self.chunks(plan, batch_size)):
            states = [self.state(e) for e in chunk]
            if c % count != index:
                report.elsewhere += sum(s in ("missing", "corrupt") for s in states)
                continue
            report.total += len(chunk)
            report.reused += sum(s == "done" for s in states)
            report.dropped += sum(s == "dropped" for s in states)
            report.corrupt += sum(s == "corrupt" for s in states)
            need = [s in ("missing", "corrupt") for s in states]
            if any(need):
                todo.append((chunk, need))
        n_todo = sum(sum(need) for _, need in todo)
        if not n_todo:
            return report
        generator = make_generator()
        if generator.config() != self.config:
            raise ValueError("the generator's config differs from the cache's")
        bar = _progress(n_todo, desc, progress)
        start = time.perf_counter()
        try:
            for chunk, need in todo:
                images = generator.generate([e.prompt for e in chunk], [e.seed for e in chunk])
                for entry, image, wanted in zip(chunk, images, need, strict=True):
                    if wanted:
                        if self._store(entry, image):
                            report.generated += 1
                        else:
                            report.dropped += 1
                bar.update(sum(need))
        finally:
            bar.close()
            report.seconds = time.perf_counter() - start
        return report

    def _write_generator_config(self) -> None:
        path = self.dir / "generator.json"
        text = json.dumps(self.config, indent=1, sort_keys=True, default=str)
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text)

    # ---- manifests --------------------------------------------------------------------------------------
    def missing(self, plan: Plan, validate: bool = True) -> list[PlanEntry]:
        """Entries with neither a (valid, unless ``validate`` is off) image nor a drop marker."""
        if not validate:
            return [e for e in plan.flat() if not self.image_path(e).exists() and not self.dropped_path(e).exists()]
        return [e for e in plan.flat() if self.state(e) in ("missing", "corrupt")]

    def build_manifest(self, plan: Plan) -> dict[str, Any]:
        """The manifest of a complete plan (deterministic: no times, sorted keys)."""
        tasks = []
        for vocab, entries in zip(plan.tasks, plan.entries, strict=True):
            images, dropped = [], []
            for e in entries:
                record = {"j": e.j, "prompt": e.prompt, "class": e.class_name, "source": e.source, "seed": e.seed}
                if self.dropped_path(e).exists():
                    dropped.append(record)
                    continue
                path = self.image_path(e)
                data = path.read_bytes()
                images.append({**record, "file": str(path.relative_to(self.dir)),
                               "sha256": hashlib.sha256(data).hexdigest()})
            tasks.append({"task": entries[0].task if entries else len(tasks) + 1, "name": vocab.name,
                          "num_images": len(images), "num_dropped": len(dropped), "images": images,
                          "dropped": dropped})
        return {"format": MANIFEST_FORMAT, "generator": self.config, "generator_key": self.key,
                "plan": {**plan.describe(), "key": plan.key()}, "image_format": self.image_format,
                "num_images": sum(t["num_images"] for t in tasks),
                "num_dropped": sum(t["num_dropped"] for t in tasks), "tasks": tasks}

    def write_manifest(self, plan: Plan, validate: bool = False) -> Path:
        """Write the plan's manifest; every entry must be generated (or dropped) by now.

        Files are only checked for existence unless ``validate``: :meth:`generate` has just validated them.
        """
        left = self.missing(plan, validate)
        if left:
            raise RuntimeError(f"{len(left)} images of the plan are still missing; generate them first")
        path = self.manifest_path(plan)
        text = json.dumps(self.build_manifest(plan), indent=1, sort_keys=True)
        try:
            unchanged = path.read_text() == text
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:  # a complete, unchanged cache may be read-only: nothing to write
            write_atomic(path, text)
        return path

    def read_manifest(self, plan: Plan) -> dict[str, Any] | None:
        """The plan's manifest, checked (see :meth:`check_manifest`); None when there is none or it is torn."""
        path = self.manifest_path(plan)
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise write_error(path, exc) from None
            return None
        except OSError as exc:
            raise UserError(f"cannot read synthetic-data manifest {path}: {exc.strerror}") from None
        self.check_manifest(manifest, path)
        return manifest

    def check_manifest(self, manifest: Any, path: Path) -> None:
        """Refuse a manifest that is not this cache's, or that names a file other than the image's own address.

        Every ``file`` must be exactly where :meth:`image_path` puts the (prompt, seed) of its record, and
        resolve inside the cache folder: a planted ``"file": "../../victim"`` would otherwise be read, and
        deleted when its hash does not match.
        """
        def reject(reason: str) -> UserError:
            return UserError(f"synthetic-data manifest {path} is not valid for this cache ({reason}); delete it and "
                             "run `clbench synth` again")

        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise reject(f"not a format-{MANIFEST_FORMAT} manifest")
        if manifest.get("generator_key") != self.key or manifest.get("image_format") != self.image_format:
            raise reject("made for another generator config or image format")
        tasks = manifest.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise reject("no task list")
        root = self.dir.resolve()
        for task in tasks:
            images = task.get("images")
            if not isinstance(images, list):
                raise reject("a task without an image list")
            for record in images:
                if not isinstance(record, dict) or not isinstance(record.get("file"), str) \
                        or not isinstance(record.get("sha256"), str) or not isinstance(record.get("prompt"), str) \
                        or not isinstance(record.get("seed"), int):
                    raise reject("an image record without file, sha256, prompt and seed")
                expected = self.image_path(PlanEntry(task=0, j=0, prompt=record["prompt"], class_name="",
                                                     source="", seed=record["seed"]))
                target = (self.dir / record["file"]).resolve()
                if record["file"] != str(expected.relative_to(self.dir)) or not target.is_relative_to(root):
                    raise reject(f"file {record['file']!r} is not the image's place in the cache")

    def task_images(self, manifest: dict[str, Any], task_index: int) -> Iterator[tuple[dict[str, Any], bytes]]:
        """(record, file bytes) of task ``task_index`` (0-based), each checked against its sha256.

        Mismatching files are deleted and :class:`CorruptCacheError` is raised after the scan.
        """
        bad = []
        for record in manifest["tasks"][task_index]["images"]:
            path = self.dir / record["file"]
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                bad.append(record["file"])
                continue
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                path.unlink(missing_ok=True)
                bad.append(record["file"])
                continue
            yield record, data
        if bad:
            raise CorruptCacheError(f"{len(bad)} cached images were missing or corrupt (e.g. {bad[0]})")


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=None if enabled else True, dynamic_ncols=True, smoothing=0.1)


def report_dict(report: GenerationReport) -> dict[str, Any]:
    return asdict(report)
