"""Versioned detector models on disk: a skops file (a format that cannot run code on load) plus a
JSON metadata file, and one ``detector_models`` row per version. Older versions are kept."""

from __future__ import annotations

import copy
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import skops.io as sio
from sqlalchemy import Engine, func, insert, select

from pipeline.core.errors import UnusableInputError
from pipeline.detection import detector as detector_module
from pipeline.detection.detector import LeakageDetector
from pipeline.detection.features import FEATURES, FeatureConfig
from pipeline.store.schema import detector_models

# The only types a model file may contain; anything else is refused at load.
TRUSTED_TYPES = frozenset(
    {
        "pipeline.detection.detector.LeakageDetector",
        "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937._rand_mt19937",
        "builtins.object",
    }
)
# Where the detector's class lived when older model files were saved. skops records the class
# path and imports it on load, so each old path is kept importable as an alias of the module.
LEGACY_DETECTOR_MODULES = ("pipeline.detect",)
LEGACY_TRUSTED_TYPES = frozenset(f"{module}.LeakageDetector" for module in LEGACY_DETECTOR_MODULES)
LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas", "eincome")


class ModelVersionDriftWarning(UserWarning):
    """The model was saved with other library versions than the running ones."""


@dataclass(frozen=True)
class StoredModel:
    version: str
    detector: LeakageDetector
    config: FeatureConfig
    meta: dict


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def save_model(
    engine: Engine,
    models_dir: Path,
    detector: LeakageDetector,
    config: FeatureConfig,
    *,
    trained_from: datetime,
    trained_to: datetime,
) -> str:
    """Write ``<version>.skops`` and ``<version>.json`` and record the version; returns it."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(detector_models)).scalar_one()
    created = datetime.now(UTC)
    version = f"m{count + 1:04d}-{trained_from:%Y%m%d}-{trained_to:%Y%m%d}"
    while (models_dir / f"{version}.skops").exists():
        count += 1
        version = f"m{count + 1:04d}-{trained_from:%Y%m%d}-{trained_to:%Y%m%d}"
    meta = {
        "version": version,
        "created_at": created.isoformat(),
        "trained_from": trained_from.astimezone(UTC).isoformat(),
        "trained_to": trained_to.astimezone(UTC).isoformat(),
        "features": list(FEATURES),
        "feature_config": asdict(config),
        "params": detector.get_params(),
        "threshold": detector.threshold_,
        "score_high": detector.score_high_,
        "training_hours": detector.n_training_hours_,
        "libraries": library_versions(),
        "format": "skops",
    }
    path = models_dir / f"{version}.skops"
    sio.dump(detector, path)
    # The process that fitted the model scores with it next (a backfill's walk): reading the
    # 4 MB file back cost as much as writing it (~2 s a week of a walk).
    _remember(path, copy.deepcopy(detector))
    (models_dir / f"{version}.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    with engine.begin() as connection:
        connection.execute(
            insert(detector_models).values(
                version=version,
                created_at=created,
                path=str(path),
                trained_from=trained_from,
                trained_to=trained_to,
                meta=json.dumps(meta, sort_keys=True),
            )
        )
    return version


def load_model(engine: Engine, models_dir: Path, version: str | None = None) -> StoredModel:
    """Load ``version`` (default: the newest); refuses unknown types, warns on library drift."""
    query = select(detector_models).order_by(
        detector_models.c.created_at.desc(), detector_models.c.version.desc()
    )
    if version is not None:
        query = select(detector_models).where(detector_models.c.version == version)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        raise UnusableInputError(
            f"model version {version!r} is not recorded"
            if version
            else "no detector model trained yet (run `eincome train`)"
        )
    path = Path(row.path)
    if not path.exists():
        path = Path(models_dir) / f"{row.version}.skops"
    if not path.exists():
        raise UnusableInputError(f"model {row.version}: file {path} is missing")
    detector = _read_detector(path)
    meta = json.loads(row.meta)
    if meta.get("features") != list(FEATURES):
        raise UnusableInputError(
            f"model {row.version} was trained on features {meta.get('features')}, this code computes {list(FEATURES)}; retrain"
        )
    drift = {
        name: (saved, now)
        for name, now in library_versions().items()
        if (saved := meta.get("libraries", {}).get(name)) not in (None, now)
    }
    if drift:
        shown = ", ".join(f"{n} {a} -> {b}" for n, (a, b) in sorted(drift.items()))
        warnings.warn(
            f"model {row.version} was saved with other library versions: {shown}",
            ModelVersionDriftWarning,
            stacklevel=2,
        )
    config = FeatureConfig(**meta.get("feature_config", {}))
    return StoredModel(version=row.version, detector=detector, config=config, meta=meta)


# Detectors read from disk (or just written) in this process, by file and its size and
# modification time: a process scoring hour after hour (``score_interval`` in a loop, a week of
# hours rescored) read and checked the same file each time, about 0.3 s per hour.
_READ: dict[tuple[str, int, int], LeakageDetector] = {}
_READ_KEEP = 4


def _read_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _remember(path: Path, detector: LeakageDetector) -> None:
    while len(_READ) >= _READ_KEEP:
        _READ.pop(next(iter(_READ)))
    _READ[_read_key(path)] = detector


def _read_detector(path: Path) -> LeakageDetector:
    """The detector in the skops file at ``path``, refusing untrusted types; a copy of the one
    read before when the file is unchanged (callers may not share one object)."""
    key = _read_key(path)
    if key not in _READ:
        untrusted = sio.get_untrusted_types(file=path)
        unexpected = sorted(set(untrusted) - TRUSTED_TYPES - LEGACY_TRUSTED_TYPES)
        if unexpected:
            raise UnusableInputError(
                f"model file {path} holds types that are not trusted: {', '.join(unexpected)}"
            )
        for legacy in LEGACY_DETECTOR_MODULES:
            sys.modules.setdefault(legacy, detector_module)
        detector = sio.load(path, trusted=list(untrusted))
        if not isinstance(detector, LeakageDetector):
            raise UnusableInputError(f"model file {path} does not hold a LeakageDetector")
        _remember(path, detector)
    return copy.deepcopy(_READ[key])


def list_models(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(detector_models).order_by(detector_models.c.created_at)
        ).all()
    return [r._asdict() for r in rows]
