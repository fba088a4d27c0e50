"""MIRFLICKR-25K (Huiskes & Lew, ACM MIR 2008): 25,000 Flickr images, manually annotated
concepts (multi-label). One of DSRH's two datasets (Zhao et al., CVPR 2015).

Files (LIACS Medialab, press.liacs.nl, release v3b), both kept whole in the raw directory:

- `mirflickr25k.zip`: the images `mirflickr/im1.jpg` .. `mirflickr/im25000.jpg`, plus the
  Flickr tags, EXIF data and licences (`mirflickr/meta/...`, `mirflickr/doc/...`; not used).
- `mirflickr25k_annotations_v080.zip`: 38 label files and a README. For each of 24 concepts a
  file `<concept>.txt` lists the images in which the concept is *potentially* present; for 14
  of them a file `<concept>_r1.txt` lists the images in which it is *relevant* (salient).
  Each line is one 1-based image number (k for `im<k>.jpg`).

Items are the images in numeric order: item i is `im<i+1>.jpg` (its id). image_source(raw)
reads them straight from the zip (no extraction).

labels(raw), the default label set, is the DSRH / deep-hashing convention: a multi-hot uint8
(n, 24) matrix of the 24 *potential* concepts, columns in alphabetical order of the concept
names (`CONCEPTS`; the sorted `<concept>.txt` file names). relevant_labels(raw) gives the 14
`_r1` concepts, (n, 14), columns in `RELEVANT_CONCEPTS` order. Images carrying none of the 24
labels stay in the item order (unlabelled rows); the protocol `mirflickr25k-q2000`
(data/splits.py) leaves them out, as the deep-hashing papers do.

The download stage checks the md5 and size of both archives (see `FILES` for where the
digests come from), then every image name and every annotation file (numbers within
1..25000, one per line), so a raw directory exists only when all of it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .loaders.archive import MemberImages, ZipMembers
from .registry import Dataset, RemoteFile, register

BASE = "https://press.liacs.nl/mirflickr/mirflickr25k.v3b/"
BASE_HTTP = "http://press.liacs.nl/mirflickr/mirflickr25k.v3b/"
IMAGES_ZIP = "mirflickr25k.zip"
ANNOTATIONS_ZIP = "mirflickr25k_annotations_v080.zip"
IMAGE_DIR = "mirflickr"
NUM_IMAGES = 25_000

# The 24 concepts with a "potential" label file <concept>.txt, in column order of labels(raw).
CONCEPTS = ("animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake",
            "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset",
            "transport", "tree", "water")
# The 14 concepts that also have a "relevant" file <concept>_r1.txt (columns of relevant_labels(raw)).
RELEVANT_CONCEPTS = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                     "portrait", "river", "sea", "tree")
RELEVANT_SUFFIX = "_r1"

IMAGE_NAME = re.compile(rf"^{IMAGE_DIR}/im(\d+)\.jpg$")

IMAGES_NOTE = ("md5 a23d0a8564ee84cda5622a6c2f947785 and 3,069,184,257 bytes as pinned by public download code for "
               "this URL (the same md5 in several independent repositories, which quote it as the official one; "
               "LIACS's page was not reachable from here to confirm it); the image names are also checked")
ANNOTATIONS_NOTE = ("md5 and 207,220 bytes as pinned by one public staging script that downloads this URL (the "
                    "copy its users received; not published by LIACS, not confirmed here); every label file is "
                    "also checked (38 files, image numbers within 1..25000)")

FILES = (
    RemoteFile(IMAGES_ZIP, (BASE + IMAGES_ZIP, BASE_HTTP + IMAGES_ZIP), size=3_069_184_257,
               md5="a23d0a8564ee84cda5622a6c2f947785", check="zip", checksum_note=IMAGES_NOTE),
    RemoteFile(ANNOTATIONS_ZIP, (BASE + ANNOTATIONS_ZIP, BASE_HTTP + ANNOTATIONS_ZIP), size=207_220,
               md5="aa0138c79892b1b670184d142380948f", check="zip", checksum_note=ANNOTATIONS_NOTE),
)


def image_member(k: int) -> str:
    """Member path of image number k (1-based) in mirflickr25k.zip."""
    return f"{IMAGE_DIR}/im{k}.jpg"


def label_file(concept: str, relevant: bool = False) -> str:
    return f"{concept}{RELEVANT_SUFFIX if relevant else ''}.txt"


def _label_member(z: ZipMembers, file_name: str) -> str:
    """The member of the annotations zip called `file_name` (at the top level, or in a single
    folder if the archive was repacked)."""
    hits = [n for n in z.names if n.rsplit("/", 1)[-1] == file_name]
    if len(hits) != 1:
        what = "no member" if not hits else f"{len(hits)} members ({hits[:3]})"
        raise PseudosupError(f"{z.path}: {what} named '{file_name}'; the MIRFLICKR-25K v080 annotations have "
                             f"one file per concept ({len(CONCEPTS)} '<concept>.txt' and {len(RELEVANT_CONCEPTS)} "
                             f"'<concept>{RELEVANT_SUFFIX}.txt'): not the expected archive, or an incomplete one")
    return hits[0]


def parse_label_file(data: bytes, n: int, where: str) -> np.ndarray:
    """The 0-based item indices listed by a label file (one 1-based image number per line;
    blank lines and surrounding whitespace ignored), sorted and unique."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    values = []
    for k, line in enumerate(data.decode("latin1").splitlines(), 1):
        token = line.strip()
        if not token:
            continue
        if not token.isdigit():
            raise PseudosupError(f"{where}:{k}: expected one image number per line, got {line!r}")
        v = int(token)
        if not 1 <= v <= n:
            raise PseudosupError(f"{where}:{k}: image number {v} is outside 1..{n} (images im1.jpg .. im{n}.jpg); "
                                 "the annotation file is corrupt or not of this archive")
        values.append(v - 1)
    return np.unique(np.asarray(values, dtype=np.int64))


@dataclass
class MirFlickr25k(Dataset):
    expected_images: int = NUM_IMAGES
    images_zip: str = IMAGES_ZIP
    annotations_zip: str = ANNOTATIONS_ZIP
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def resized(self, counts: dict) -> "MirFlickr25k":
        """Another image count (a stand-in's): {"images": n}, images im1.jpg .. im<n>.jpg."""
        if set(counts) - {"images"}:
            raise PseudosupError(f"{self.name}: unknown counts {sorted(set(counts) - {'images'})} "
                                 "(MIRFLICKR-25K has images)")
        return replace(self, expected_images=int(counts["images"]), _cache={}) if counts else self

    def num_items(self, raw: Path) -> int:
        return self.expected_images

    def ids(self) -> list[str]:
        return [f"im{k}.jpg" for k in range(1, self.expected_images + 1)]

    def concepts(self, raw: Path | None = None) -> list[str]:
        """Column names of labels(raw)."""
        return list(CONCEPTS)

    def relevant_concepts(self, raw: Path | None = None) -> list[str]:
        """Column names of relevant_labels(raw)."""
        return list(RELEVANT_CONCEPTS)

    # --- images ---------------------------------------------------------------------------

    def _image_members(self, raw: Path) -> ZipMembers:
        key = ("images", Path(raw))
        if key not in self._cache:
            z = ZipMembers(Path(raw) / self.images_zip)
            n = self.expected_images
            found = {name for name in z.names if IMAGE_NAME.match(name)}
            want = {image_member(k) for k in range(1, n + 1)}
            missing, extra = sorted(want - found), sorted(found - want)
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"{len(missing)} of im1.jpg .. im{n}.jpg missing (e.g. {missing[0]})")
                if extra:
                    parts.append(f"{len(extra)} unexpected image member(s) (e.g. {extra[0]})")
                raise PseudosupError(f"{z.path}: {'; '.join(parts)}; expected {IMAGE_DIR}/im<k>.jpg for k = 1..{n}: "
                                     "not the MIRFLICKR-25K image archive, or an incomplete one")
            self._cache[key] = z
        return self._cache[key]

    def image_source(self, raw: Path) -> MemberImages:
        """Images in item order (im1.jpg first), decoded lazily from mirflickr25k.zip."""
        z = self._image_members(raw)
        return MemberImages(z, [image_member(k) for k in range(1, self.expected_images + 1)], ids=self.ids())

    # --- labels ---------------------------------------------------------------------------

    def _label_matrix(self, raw: Path, concepts: tuple[str, ...], relevant: bool) -> np.ndarray:
        key = ("relevant" if relevant else "potential", Path(raw))
        if key not in self._cache:
            z = ZipMembers(Path(raw) / self.annotations_zip)
            n = self.expected_images
            out = np.zeros((n, len(concepts)), dtype=np.uint8)
            for c, concept in enumerate(concepts):
                member = _label_member(z, label_file(concept, relevant))
                out[parse_label_file(z.read(member), n, f"{z.path}:{member}"), c] = 1
            self._cache[key] = out
        return self._cache[key].copy()

    def labels(self, raw: Path) -> np.ndarray:
        """Multi-hot uint8 (n, 24): column c = concept CONCEPTS[c] potentially present
        (<concept>.txt). Rows of unlabelled images are all zero."""
        return self._label_matrix(raw, CONCEPTS, relevant=False)

    def relevant_labels(self, raw: Path) -> np.ndarray:
        """Multi-hot uint8 (n, 14): column c = concept RELEVANT_CONCEPTS[c] relevant
        (<concept>_r1.txt)."""
        return self._label_matrix(raw, RELEVANT_CONCEPTS, relevant=True)

    # --- the download stage ----------------------------------------------------------------

    def materialise_local(self, tmp: Path) -> dict:
        """Check the verified archives' contents before the raw directory is made: every
        image name, all 38 label files. Returns the counts for the manifest."""
        try:
            self._image_members(tmp)
            potential = self.labels(tmp)
            relevant = self.relevant_labels(tmp)
        except PseudosupError as e:  # name the downloaded file, not the temporary directory
            raise PseudosupError(f"{str(e).replace(str(tmp) + '/', '')} (checked by the download stage; no raw "
                                 "directory was made)") from None
        finally:
            self._cache.clear()  # keyed by the temporary directory, which is renamed next
        return {"mirflickr": {
            "images": self.expected_images,
            "label_set": f"labels(raw): the {len(CONCEPTS)} potential concepts (<concept>.txt)",
            "images_with_a_label": int(potential.any(axis=1).sum()),
            "per_concept": {c: int(v) for c, v in zip(CONCEPTS, potential.sum(axis=0))},
            "per_relevant_concept": {c: int(v) for c, v in zip(RELEVANT_CONCEPTS, relevant.sum(axis=0))}}}


@register("mirflickr-25k")
def _mirflickr_25k() -> Dataset:
    return MirFlickr25k(
        name="mirflickr-25k", kind="images", relevance="multilabel",
        description="MIRFLICKR-25K: 25,000 Flickr images, 24 potential concepts (multi-label; also 14 'relevant' "
                    "concepts); images im1..im25000",
        homepage="https://press.liacs.nl/mirflickr/",
        license="images under Creative Commons licences of their Flickr owners (credits in the archive); "
                "collection free for research",
        files=FILES)
