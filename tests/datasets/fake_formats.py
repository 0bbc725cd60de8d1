"""Writers of tiny fake datasets in each official on-disk format (what the real downloads look like).

Images are 8x8 (MNIST/MedMNIST: 28x28 arrays), a few per class, so every loader test stays fast.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io as sio
import torchvision.transforms as T
from PIL import Image

from clbench.benchmark import Transforms


def tiny_transforms() -> Transforms:
    """An identity-ish preprocessing: 8x8 tensors."""
    tf = T.Compose([T.Resize((8, 8)), T.ToTensor()])
    return Transforms(train=tf, eval=tf, image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def image(path: Path, shade: int = 0, mode: str = "RGB") -> Path:
    """An 8x8 image file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = (shade % 256, 40, 200) if mode == "RGB" else shade % 256
    Image.new(mode, (8, 8), color).save(path)
    return path


# ---- CIFAR-100 (python pickles) -------------------------------------------------------------------------------
CIFAR_NAMES = [f"class_{i:02d}" for i in range(100)]  # underscores, like "aquarium_fish"


def write_cifar100(root: Path, train_per_class: int = 1, test_per_class: int = 1) -> Path:
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [c for c in range(100) for _ in range(per_class)]
        data = rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)
        with open(base / split, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": labels, "coarse_labels": [0] * len(labels)}, fh)
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": CIFAR_NAMES, "coarse_label_names": ["all"]}, fh)
    return base


# ---- TinyImageNet (tiny-imagenet-200/) ----------------------------------------------------------------------
def write_tiny_imagenet(root: Path, wnids: Sequence[str], words: dict[str, str]) -> Path:
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\t{s}\n" for w, s in words.items()))
    lines = []
    for i, wnid in enumerate(wnids):
        image(base / "train" / wnid / "images" / f"{wnid}_0.JPEG", i)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t8\t8\n")
        image(base / "val" / "images" / f"val_{i}.JPEG", i)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t8\t8\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    return base


# ---- torchvision formats of the MTIL datasets ---------------------------------------------------------------
def write_aircraft(root: Path, variants: Sequence[str]) -> None:
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    for split, offset in (("train", 0), ("test", 1000)):
        lines = []
        for i, v in enumerate(variants):
            name = f"{offset + i:07d}"
            image(data / "images" / f"{name}.jpg", i)
            lines.append(f"{name} {v}\n")
        (data / f"images_variant_{split}.txt").write_text("".join(lines))


def write_caltech101(root: Path, n_categories: int = 101) -> None:
    cats = root / "caltech101" / "101_ObjectCategories"
    image(cats / "BACKGROUND_Google" / "image_0001.jpg")
    for c in range(n_categories):
        image(cats / f"cat_{c:03d}" / "image_0001.jpg", c, mode="L" if c == 0 else "RGB")


def write_dtd(root: Path, classes: Sequence[str]) -> None:
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        lines = []
        for i, c in enumerate(classes):
            image(data / "images" / c / f"{c}_{split}.jpg", i)
            lines.append(f"{c}/{c}_{split}.jpg\n")
        (data / "labels" / f"{split}1.txt").write_text("".join(lines))


EUROSAT_FOLDERS = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")


def write_eurosat(root: Path, per_class: int = 2) -> None:
    for i, c in enumerate(EUROSAT_FOLDERS):
        for k in range(per_class):
            image(root / "eurosat" / "2750" / c / f"{c}_{k + 1}.jpg", i)


def write_flowers102(root: Path, n_classes: int = 102) -> None:
    base = root / "flowers-102"
    labels = []
    for c in range(n_classes):
        for _ in range(2):
            labels.append(c + 1)
            image(base / "jpg" / f"image_{len(labels):05d}.jpg", c)
    ids = np.arange(1, len(labels) + 1)
    sio.savemat(base / "imagelabels.mat", {"labels": np.array(labels)})
    sio.savemat(base / "setid.mat", {"trnid": ids[0::2], "valid": ids[0::2], "tstid": ids[1::2]})


def write_food101(root: Path, classes: Sequence[str]) -> None:
    base = root / "food-101"
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, k in (("train", 1), ("test", 2)):
        meta = {c: [f"{c}/{k}"] for c in classes}
        for i, c in enumerate(classes):
            image(base / "images" / c / f"{k}.jpg", i)
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))


def _idx(path: Path, array: np.ndarray) -> None:
    magic = {1: 2049, 3: 2051}[array.ndim]
    with open(path, "wb") as fh:
        fh.write(struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def write_mnist(root: Path, per_class: int = 1) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(10), per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


def write_pets(root: Path, breeds: Sequence[str]) -> None:
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, k in (("trainval", 1), ("test", 2)):
        lines = []
        for i, breed in enumerate(breeds):
            image(base / "images" / f"{breed}_{k}.jpg", i)
            lines.append(f"{breed}_{k} {i + 1} {1 if breed[0].isupper() else 2} {i + 1}\n")
        (base / "annotations" / f"{split}.txt").write_text("".join(lines))


def write_stanford_cars(root: Path, classes: Sequence[str]) -> None:
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    sio.savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(list(classes), dtype=object)})
    for split, mat in (("train", base / "devkit" / "cars_train_annos.mat"),
                       ("test", base / "cars_test_annos_withlabels.mat")):
        ann = np.zeros(len(classes), dtype=[("fname", "O"), ("class", "O")])
        for i in range(len(classes)):
            fname = f"{i + 1:05d}.jpg"
            image(base / f"cars_{split}" / fname, i)
            ann[i] = (fname, i + 1)
        sio.savemat(mat, {"annotations": ann})


def write_sun397(root: Path, classes: Sequence[str], per_class: int = 3) -> None:
    base = root / "SUN397"
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("".join(f"/{c[0]}/{c}\n" for c in classes))
    for i, c in enumerate(classes):
        for k in range(per_class):
            image(base / c[0] / c / f"sun_{k:04d}{c.replace('/', '')}.jpg", i)


# ---- MedMNIST (.npz) --------------------------------------------------------------------------------------------
def write_medmnist(folder: Path, flag: str, n_classes: int, channels: int, size: int = 28,
                   per_class: tuple[int, int] = (2, 1)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in zip(("train", "val", "test"), (per_class[0], 1, per_class[1]), strict=True):
        labels = np.repeat(np.arange(n_classes), n).reshape(-1, 1).astype(np.uint8)
        shape = (len(labels), size, size) + ((3,) if channels == 3 else ())
        arrays[f"{split}_images"] = np.full(shape, 7, dtype=np.uint8)
        arrays[f"{split}_labels"] = labels
    path = folder / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez_compressed(path, **arrays)
    return path


# ---- class folders / split.csv (bring-your-own-data medical) -----------------------------------------------
def write_class_folders(folder: Path, keys: Sequence[str], per_split: int = 1) -> None:
    for split in ("train", "test"):
        for i, key in enumerate(keys):
            for k in range(per_split):
                image(folder / split / key / f"{k}.png", i)


def write_split_csv(folder: Path, keys: Sequence[str]) -> None:
    rows = ["path,label,split"]
    for split in ("train", "test"):
        for i, key in enumerate(keys):
            rel = f"images/{split}_{i}.png"
            image(folder / rel, i)
            rows.append(f"{rel},{key},{split}")
    (folder / "split.csv").write_text("\n".join(rows) + "\n")
