"""MTIL (ZSCL, Zheng et al., ICCV 2023): per-dataset prompt templates and the hand-written class names.

Copied from ZSCL's ``mtil/src/datasets/collections.py`` (itself CLIP's ``data/prompts.md``, with ZSCL's
edits: e.g. Food uses "a photo of a {}, a type of food." where CLIP has "a photo of {}, ..."). Training uses
the first template of a dataset, evaluation the ensemble of all. Datasets whose names come from the data files
(Aircraft variants, DTD, Food, MNIST, Oxford Pets, Stanford Cars, SUN397, CIFAR100) get them from torchvision's
``classes`` with ``_`` replaced by spaces, exactly as ZSCL's ``process_labels`` does; the three lists below
replace dataset folder names that read badly in a prompt (Caltech101 ``Faces_easy``, EuroSAT ``SeaLake``...).
The double space in Caltech101's "head of a  crocodile" is ZSCL's and is kept.
"""

from __future__ import annotations

from .cifar100 import TEMPLATES as CIFAR100_TEMPLATES

TEMPLATES: dict[str, tuple[str, ...]] = {
    "Aircraft": (
        "a photo of a {}, a type of aircraft.",
        "a photo of the {}, a type of aircraft.",
    ),
    "Caltech101": (
        "a photo of a {}.",
        "a painting of a {}.",
        "a plastic {}.",
        "a sculpture of a {}.",
        "a sketch of a {}.",
        "a tattoo of a {}.",
        "a toy {}.",
        "a rendition of a {}.",
        "a embroidered {}.",
        "a cartoon {}.",
        "a {} in a video game.",
        "a plushie {}.",
        "a origami {}.",
        "art of a {}.",
        "graffiti of a {}.",
        "a drawing of a {}.",
        "a doodle of a {}.",
        "a photo of the {}.",
        "a painting of the {}.",
        "the plastic {}.",
        "a sculpture of the {}.",
        "a sketch of the {}.",
        "a tattoo of the {}.",
        "the toy {}.",
        "a rendition of the {}.",
        "the embroidered {}.",
        "the cartoon {}.",
        "the {} in a video game.",
        "the plushie {}.",
        "the origami {}.",
        "art of the {}.",
        "graffiti of the {}.",
        "a drawing of the {}.",
        "a doodle of the {}.",
    ),
    "CIFAR100": CIFAR100_TEMPLATES,
    "DTD": (
        "a photo of a {} texture.",
        "a photo of a {} pattern.",
        "a photo of a {} thing.",
        "a photo of a {} object.",
        "a photo of the {} texture.",
        "a photo of the {} pattern.",
        "a photo of the {} thing.",
        "a photo of the {} object.",
    ),
    "EuroSAT": (
        "a centered satellite photo of {}.",
        "a centered satellite photo of a {}.",
        "a centered satellite photo of the {}.",
    ),
    "Flowers": ("a photo of a {}, a type of flower.",),
    "Food": ("a photo of a {}, a type of food.",),
    "MNIST": ('a photo of the number: "{}".',),
    "OxfordPet": ("a photo of a {}, a type of pet.",),
    "Cars": (
        "a photo of a {}, a type of car.",
        "a photo of a {}.",
        "a photo of the {}.",
        "a photo of my {}.",
        "i love my {}!",
        "a photo of my dirty {}.",
        "a photo of my clean {}.",
        "a photo of my new {}.",
        "a photo of my old {}.",
    ),
    "SUN397": (
        "a photo of a {}.",
        "a photo of the {}.",
    ),
}

# Caltech101 categories in torchvision's order (sorted folder names without BACKGROUND_Google).
CALTECH101: tuple[str, ...] = (
    "off-center face", "centered face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant",
    "barrel", "bass", "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly",
    "camera", "cannon", "side of a car", "ceiling fan", "cellphone", "chair", "chandelier",
    "body of a cougar cat", "face of a cougar cat", "crab", "crayfish", "crocodile", "head of a  crocodile",
    "cup", "dalmatian", "dollar bill", "dolphin", "dragonfly", "electric guitar", "elephant", "emu",
    "euphonium", "ewer", "ferry", "flamingo", "head of a flamingo", "garfield", "gerenuk", "gramophone",
    "grand piano", "hawksbill", "headphone", "hedgehog", "helicopter", "ibis", "inline skate", "joshua tree",
    "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster", "lotus", "mandolin", "mayfly", "menorah",
    "metronome", "minaret", "nautilus", "octopus", "okapi", "pagoda", "panda", "pigeon", "pizza", "platypus",
    "pyramid", "revolver", "rhino", "rooster", "saxophone", "schooner", "scissors", "scorpion", "sea horse",
    "snoopy (cartoon beagle)", "soccer ball", "stapler", "starfish", "stegosaurus", "stop sign", "strawberry",
    "sunflower", "tick", "trilobite", "umbrella", "watch", "water lilly", "wheelchair", "wild cat",
    "windsor chair", "wrench", "yin and yang symbol",
)

# EuroSAT classes in torchvision's (ImageFolder, sorted) order: AnnualCrop, Forest, HerbaceousVegetation, ...
EUROSAT: tuple[str, ...] = (
    "annual crop land",
    "forest",
    "brushland or shrubland",
    "highway or road",
    "industrial buildings or commercial buildings",
    "pasture land",
    "permanent crop land",
    "residential buildings or homes or apartments",
    "river",
    "lake or sea",
)

# Oxford Flowers-102 in label order (imagelabels.mat label 1 = "pink primrose").
FLOWERS102: tuple[str, ...] = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot",
    "king protea", "spear thistle", "yellow iris", "globe-flower", "purple coneflower", "peruvian lily",
    "balloon flower", "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke",
    "sweet william", "carnation", "garden phlox", "love in the mist", "mexican aster", "alpine sea holly",
    "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip", "lenten rose", "barbeton daisy",
    "daffodil", "sword lily", "poinsettia", "bolero deep blue", "wallflower", "marigold", "buttercup",
    "oxeye daisy", "common dandelion", "petunia", "wild pansy", "primula", "sunflower", "pelargonium",
    "bishop of llandaff", "gaura", "geranium", "orange dahlia", "pink-yellow dahlia", "cautleya spicata",
    "japanese anemone", "black-eyed susan", "silverbush", "californian poppy", "osteospermum", "spring crocus",
    "bearded iris", "windflower", "tree poppy", "gazania", "azalea", "water lily", "rose", "thorn apple",
    "morning glory", "passion flower", "lotus", "toad lily", "anthurium", "frangipani", "clematis", "hibiscus",
    "columbine", "desert-rose", "tree mallow", "magnolia", "cyclamen", "watercress", "canna lily",
    "hippeastrum", "bee balm", "ball moss", "foxglove", "bougainvillea", "camellia", "mallow",
    "mexican petunia", "bromelia", "blanket flower", "trumpet creeper", "blackberry lily",
)
