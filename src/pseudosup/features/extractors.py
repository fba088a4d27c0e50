"""The extractor registry: params `features.<name>.extractor` -> how to describe items.

Each entry names the function that extracts (a "module:function" string, imported only
when used, so a job's code dependencies are the extractor it runs: see
pseudosup.workflow) and what the extractor needs:

- `reads`: what of the dataset it takes: "vectors" (a vector dataset's own rows,
  streamed), "images" (all images as one array; fixed-size datasets) or "source" (an
  image source read lazily, any size);
- `fit_params`: the params key of a fitting step run first on a separate sample
  (`sift-bow`: visual vocabulary, IDF and dense projection, always; `cnn`: PCA-whitening
  when `whitening` is set); `fit` names the fitting function;
- `backbone`: a checkpoint pre-trained by `pseudosup pretrain` (small-cnn);
- `bow`: also writes the sparse bag of words (the CIE inverted index) with this
  "module:function" (`save_bow`);
- `weights`: may read a local weights file (params `weights`).

    result = extract(cfg, source, fitted=None, threads=1, seed=0)
    result.dense   # float32 (n, d), one row per item in dataset order (zero row = skipped)
    result.bow     # (counts CSR, idf) for sift-bow, else None
    result.meta    # sidecar entries: params, weights source, skipped/converted items, ...
    result.stream  # True: `dense` is the dataset's own memory-mapped rows (write them streamed)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError


@dataclass(frozen=True)
class Extractor:
    extract: str                   # "module:function" (cfg, source, ctx) -> Result
    reads: str = "source"          # "vectors" | "images" | "source"
    fit: str | None = None         # "module:function" (cfg, source, indices, ctx) -> (meta, arrays)
    fit_params: str | None = None  # params key of the fitting sample (vocabulary, whitening)
    fit_always: bool = False       # False: fitted only when params `fit_params` is set
    backbone: bool = False         # needs a pre-trained checkpoint (--backbone)
    bow: str | None = None         # "module:function" writing the sparse bag of words
    weights: bool = False          # params `weights` may be a local file (an input)
    gpu: bool = False              # a network: can use a GPU (params `gpus`, SLURM --gpus)

    @property
    def targets(self) -> list[str]:
        """The "module:function" strings this entry may run."""
        return [t for t in (self.extract, self.fit, self.bow) if t]


_E = "pseudosup.features.extractors:"
ENTRIES = {
    "vectors": Extractor(_E + "extract_vectors", reads="vectors"),
    "pixels": Extractor(_E + "extract_pixels", reads="images"),
    "small-cnn": Extractor(_E + "extract_small_cnn", reads="images", backbone=True, gpu=True),
    "gist": Extractor(_E + "extract_gist"),
    "sift-bow": Extractor(_E + "extract_sift_bow", fit=_E + "fit_sift_bow", fit_params="vocabulary",
                          fit_always=True, bow="pseudosup.features.sparse:save_bow"),
    "cnn": Extractor(_E + "extract_cnn", fit=_E + "fit_whitening", fit_params="whitening", weights=True,
                     gpu=True),
}


@dataclass
class Context:
    """What an extractor gets besides its params and the items."""

    fitted: tuple[dict, dict] | None = None   # (meta, arrays) from `fit`
    threads: int = 1
    seed: int = 0
    backbone: Path | None = None              # small-cnn checkpoint
    dataset: str | None = None                # checked against the backbone's record


@dataclass
class Result:
    dense: np.ndarray
    meta: dict = field(default_factory=dict)
    bow: tuple | None = None
    stream: bool = False


def entry(name: str) -> Extractor:
    if name not in ENTRIES:
        raise PseudosupError(f"unknown extractor '{name}' (params features.<name>.extractor); "
                             f"registered: {names()}")
    return ENTRIES[name]


def names() -> list[str]:
    return sorted(ENTRIES)


def needs_fit(cfg: dict) -> bool:
    e = entry(cfg["extractor"])
    return e.fit is not None and (e.fit_always or bool(cfg.get(e.fit_params)))


def fit_params(cfg: dict) -> dict | None:
    """The params of the fitting sample (e.g. `vocabulary`), None when nothing is fitted."""
    return cfg.get(entry(cfg["extractor"]).fit_params) if needs_fit(cfg) else None


def _torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _resolve(target: str):
    import importlib

    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _ids(source):
    return getattr(source, "ids", None)


# --- extract ---------------------------------------------------------------------------------------

def extract(cfg: dict, source, fitted: tuple[dict, dict] | None = None, threads: int = 1, seed: int = 0,
            backbone: Path | None = None, dataset: str | None = None) -> Result:
    """Run the extractor of `cfg` on `source` (what its entry `reads`)."""
    kind = cfg["extractor"]
    if needs_fit(cfg) and fitted is None:
        raise PseudosupError(f"extractor {kind}: needs its fitted model (run `pseudosup fit-features` first "
                             "and pass it with --fitted)")
    ctx = Context(fitted, threads, seed, backbone, dataset)
    return _resolve(entry(kind).extract)(cfg, source, ctx)


def extract_vectors(cfg: dict, source, ctx: Context) -> Result:
    return Result(source, stream=True)


def extract_pixels(cfg: dict, images, ctx: Context) -> Result:
    from . import pixels

    return Result(pixels.extract(images))


def extract_small_cnn(cfg: dict, images, ctx: Context) -> Result:
    import torch

    from ..provenance import state_sha256
    from . import smallcnn

    _torch_threads(ctx.threads)
    if ctx.backbone is None:
        raise PseudosupError("the small-cnn extractor needs its pre-trained checkpoint (--backbone)")
    ckpt = torch.load(ctx.backbone, map_location="cpu", weights_only=False)
    m = ckpt["meta"]
    if m.get("kind") != "small-cnn":
        raise PseudosupError(f"{ctx.backbone}: checkpoint of kind '{m.get('kind')}', expected small-cnn")
    if m.get("dataset") != ctx.dataset:
        raise PseudosupError(f"{ctx.backbone}: pre-trained on dataset '{m.get('dataset')}', not '{ctx.dataset}'")
    if m.get("state_sha256") != state_sha256(ckpt["state_dict"]):
        raise PseudosupError(f"{ctx.backbone}: its weights differ from those it recorded when saved (file changed "
                             f"after it was written?); delete it and rerun `snakemake {ctx.backbone}`")
    model = smallcnn.SmallCNN(m["in_channels"], m["config"]["width"], m["config"]["dim"], m["n_classes"])
    model.load_state_dict(ckpt["state_dict"])
    X = smallcnn.extract(model, images, cfg["batch_size"])
    weights = {"checkpoint": str(ctx.backbone), "trained_on": f"{m['split']}/{m['part']}",
               "code_version": m["code_version"]}
    return Result(X, {"weights": weights})


def extract_gist(cfg: dict, source, ctx: Context) -> Result:
    from . import gist

    X, report = gist.extract(source, tuple(cfg["orientations"]), cfg["colour"], cfg["image_size"], cfg["blocks"],
                             cfg["fc_prefilt"], cfg["boundary"], cfg["batch_size"], ctx.threads, _ids(source))
    return Result(X, report)


def sift_config(cfg: dict):
    from .sift import SiftConfig

    return SiftConfig.from_params(cfg.get("sift", {}))


def extract_sift_bow(cfg: dict, source, ctx: Context) -> Result:
    from . import bow

    meta_f, arrays = ctx.fitted
    voc = cfg["vocabulary"]
    counts, report = bow.encode(source, arrays["centroids"], sift_config(cfg), voc["assign"], voc["assign_k"],
                                ctx.threads, _ids(source))
    G = bow.tfidf(counts, arrays["idf"])
    dense = bow.project(G, {"mean": arrays["proj_mean"], "projection": arrays["projection"]})
    report.update(n_words=int(counts.shape[1]), nnz_per_item=float(counts.nnz / max(1, counts.shape[0])),
                  fitted=_fitted_summary(meta_f))
    return Result(dense, report, (counts, arrays["idf"]))


def extract_cnn(cfg: dict, source, ctx: Context) -> Result:
    from . import cnn

    _torch_threads(ctx.threads)
    backbone = cnn.load_backbone(cfg["backbone"], cfg["weights"], ctx.seed)
    out, report = cnn.extract(source, backbone, [cfg["pooling"]], cfg["image_size"], cfg["resize"],
                              cfg["batch_size"], cfg["workers"], tuple(cfg["scales"]), cfg["gem_p"],
                              cfg["rmac_levels"], cfg["min_side"], _ids(source))
    X = out[cfg["pooling"]]
    report["weights_source"] = backbone.source
    if cfg.get("whitening"):
        meta_f, arrays = ctx.fitted
        X = cnn.apply_whitening(X, {"mean": arrays["mean"], "projection": arrays["projection"]})
        report["fitted"] = _fitted_summary(meta_f)
    return Result(X, report)


def _fitted_summary(meta: dict) -> dict:
    return {k: meta[k] for k in ("kind", "trained_on", "n_images", "code_version", "sha256") if k in meta}


def save_bow(cfg: dict, path: Path, bow: tuple, meta: dict) -> None:
    """Write the sparse bag of words `bow` (counts, idf) of an extractor that has one."""
    e = entry(cfg["extractor"])
    if e.bow is None:
        raise PseudosupError(f"extractor {cfg['extractor']} writes no bag of words")
    _resolve(e.bow)(path, bow[0], bow[1], meta)


# --- fit ---------------------------------------------------------------------------------------------

def fit(cfg: dict, source, indices: np.ndarray, threads: int = 1, seed: int = 0) -> tuple[dict, dict]:
    """Learn the unsupervised parts of an extractor on the images `indices` (a
    separate sample). Returns (meta, arrays) for pseudosup.io.save_npz."""
    if not needs_fit(cfg):
        fitting = [n for n, e in ENTRIES.items() if e.fit]
        raise PseudosupError(f"extractor {cfg['extractor']}: nothing to fit (only {', '.join(fitting)}, "
                             "with their fitting params)")
    return _resolve(entry(cfg["extractor"]).fit)(cfg, source, indices, Context(threads=threads, seed=seed))


def fit_sift_bow(cfg: dict, source, indices, ctx: Context) -> tuple[dict, dict]:
    from . import bow

    threads, seed = ctx.threads, ctx.seed
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


def fit_whitening(cfg: dict, source, indices, ctx: Context) -> tuple[dict, dict]:
    from . import cnn

    _torch_threads(ctx.threads)
    backbone = cnn.load_backbone(cfg["backbone"], cfg["weights"], ctx.seed)
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
