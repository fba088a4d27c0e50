"""The extractor registry: params `features.<name>` -> arrays, for the stages.

Each extractor is an image-source-in, arrays-out function; the two that learn
something unsupervised first (`sift-bow`: visual vocabulary, IDF and dense
projection; `cnn` with `whitening`: PCA-whitening) have a `fit` step that runs on a
separate sample of images and returns a self-describing model (arrays + meta) that
`extract` then applies identically to every item.

    result = extract(cfg, source, fitted=None, threads=1, seed=0)
    result.dense   # float32 (n, d), one row per item in dataset order (zero row = skipped)
    result.bow     # (counts CSR, idf) for sift-bow, else None
    result.meta    # sidecar entries: params, weights source, skipped/converted items, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io import PseudosupError

FITTED = ("sift-bow",)  # always fitted; `cnn` only with whitening


@dataclass
class Result:
    dense: np.ndarray
    meta: dict = field(default_factory=dict)
    bow: tuple | None = None


def needs_fit(cfg: dict) -> bool:
    return cfg["extractor"] in FITTED or (cfg["extractor"] == "cnn" and bool(cfg.get("whitening")))


def _ids(source):
    return getattr(source, "ids", None)


# --- extract ---------------------------------------------------------------------------------------

def extract(cfg: dict, source, fitted: tuple[dict, dict] | None = None, threads: int = 1, seed: int = 0) -> Result:
    kind = cfg["extractor"]
    if needs_fit(cfg) and fitted is None:
        raise PseudosupError(f"extractor {kind}: needs its fitted model (run `pseudosup fit-features` first "
                             "and pass it with --fitted)")
    if kind == "gist":
        return _gist(cfg, source, threads)
    if kind == "sift-bow":
        return _sift_bow(cfg, source, fitted, threads)
    if kind == "cnn":
        return _cnn(cfg, source, fitted, threads, seed)
    raise PseudosupError(f"extractor {kind!r} is not an image extractor of this registry")


def _gist(cfg: dict, source, threads: int) -> Result:
    from . import gist

    X, report = gist.extract(source, tuple(cfg["orientations"]), cfg["colour"], cfg["image_size"], cfg["blocks"],
                             cfg["fc_prefilt"], cfg["boundary"], cfg["batch_size"], threads, _ids(source))
    return Result(X, report)


def sift_config(cfg: dict):
    from .sift import SiftConfig

    return SiftConfig.from_params(cfg.get("sift", {}))


def _sift_bow(cfg: dict, source, fitted, threads: int) -> Result:
    from . import bow

    meta_f, arrays = fitted
    voc = cfg["vocabulary"]
    counts, report = bow.encode(source, arrays["centroids"], sift_config(cfg), voc["assign"], voc["assign_k"],
                                threads, _ids(source))
    G = bow.tfidf(counts, arrays["idf"])
    dense = bow.project(G, {"mean": arrays["proj_mean"], "projection": arrays["projection"]})
    report.update(n_words=int(counts.shape[1]), nnz_per_item=float(counts.nnz / max(1, counts.shape[0])),
                  fitted=_fitted_summary(meta_f))
    return Result(dense, report, (counts, arrays["idf"]))


def _cnn(cfg: dict, source, fitted, threads: int, seed: int) -> Result:
    from . import cnn

    backbone = cnn.load_backbone(cfg["backbone"], cfg["weights"], seed)
    out, report = cnn.extract(source, backbone, [cfg["pooling"]], cfg["image_size"], cfg["resize"],
                              cfg["batch_size"], cfg["workers"], tuple(cfg["scales"]), cfg["gem_p"],
                              cfg["rmac_levels"], cfg["min_side"], _ids(source))
    X = out[cfg["pooling"]]
    report["weights_source"] = backbone.source
    if cfg.get("whitening"):
        meta_f, arrays = fitted
        X = cnn.apply_whitening(X, {"mean": arrays["mean"], "projection": arrays["projection"]})
        report["fitted"] = _fitted_summary(meta_f)
    return Result(X, report)


def _fitted_summary(meta: dict) -> dict:
    return {k: meta[k] for k in ("kind", "trained_on", "n_images", "code_version", "sha256") if k in meta}


# --- fit ---------------------------------------------------------------------------------------------

def fit(cfg: dict, source, indices: np.ndarray, threads: int = 1, seed: int = 0) -> tuple[dict, dict]:
    """Learn the unsupervised parts of an extractor on the images `indices` (a
    separate sample). Returns (meta, arrays) for pseudosup.io.save_npz."""
    if cfg["extractor"] == "sift-bow":
        return _fit_sift_bow(cfg, source, indices, threads, seed)
    if cfg["extractor"] == "cnn" and cfg.get("whitening"):
        return _fit_whitening(cfg, source, indices, threads, seed)
    raise PseudosupError(f"extractor {cfg['extractor']}: nothing to fit (only sift-bow and cnn with whitening)")


def _fit_sift_bow(cfg: dict, source, indices, threads: int, seed: int) -> tuple[dict, dict]:
    from . import bow

    voc = cfg["vocabulary"]
    sc = sift_config(cfg)
    X, report = bow.sample_descriptors(source, sc, indices, voc["max_descriptors"], seed, threads)
    centroids = bow.train_vocabulary(X, voc["size"], voc["iterations"], seed, threads)
    counts, _ = bow.encode(_Subset(source, indices), centroids, sc, voc["assign"], voc["assign_k"], threads)
    idf = bow.idf_of(counts)
    proj = bow.fit_projection(bow.tfidf(counts, idf), cfg["dense_dim"], cfg["whiten"], seed)
    meta = {"kind": "sift-bow", "n_images": int(len(indices)), "n_descriptors": int(len(X)),
            "n_words": int(voc["size"]), "skipped_in_sample": report["n_skipped"]}
    return meta, {"centroids": centroids, "idf": idf, "proj_mean": proj["mean"], "projection": proj["projection"],
                  "singular_values": proj["singular_values"], "sample": np.asarray(indices, np.int64)}


def _fit_whitening(cfg: dict, source, indices, threads: int, seed: int) -> tuple[dict, dict]:
    from . import cnn

    backbone = cnn.load_backbone(cfg["backbone"], cfg["weights"], seed)
    out, report = cnn.extract(_Subset(source, indices), backbone, [cfg["pooling"]], cfg["image_size"], cfg["resize"],
                              cfg["batch_size"], cfg["workers"], tuple(cfg["scales"]), cfg["gem_p"],
                              cfg["rmac_levels"], cfg["min_side"])
    X = out[cfg["pooling"]]
    X = X[X.any(axis=1)]  # skipped images do not take part
    w = cnn.fit_whitening(X, cfg["whitening"]["dim"])
    meta = {"kind": "cnn-whitening", "n_images": int(len(X)), "dim": int(w["projection"].shape[1]),
            "weights_source": backbone.source, "skipped_in_sample": report["n_skipped"]}
    return meta, {**w, "sample": np.asarray(indices, np.int64)}


class _Subset:
    """The items `indices` of an image source, as an image source."""

    def __init__(self, source, indices):
        self.source, self.indices = source, np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.source[int(self.indices[i])]


def sample_indices(n: int, pool: np.ndarray | None, size: int | None, seed: int) -> np.ndarray:
    """A seeded sample (sorted) of `size` items from `pool` (default: all n items)."""
    pool = np.arange(n) if pool is None else np.asarray(pool)
    if size is None or size >= len(pool):
        return np.sort(pool)
    return np.sort(np.random.default_rng(seed).choice(pool, size, replace=False))
