"""MedMNIST+ 2D datasets: label names (from MedMNIST's ``INFO`` metadata) and clbench's prompt templates.

Label names are copied from ``medmnist/info.py`` (MedMNIST v2/v3, https://github.com/MedMNIST/MedMNIST) so
clbench does not depend on the ``medmnist`` package. Cite: Yang, Shi, Wei, Liu, Zhao, Ke, Pfister, Ni.
"MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image classification",
Scientific Data 10, 41 (2023); data licence CC BY 4.0 (each source dataset keeps its own licence).

``PROMPT_NAMES`` departs from ``LABELS`` only for RetinaMNIST, whose labels are the bare grades "0".."4" of
diabetic retinopathy (a meaningless prompt); ``TEMPLATES`` name each dataset's imaging modality. Both are
clbench's choices (no paper defines prompts for a MedMNIST stream).
"""

from __future__ import annotations

# flag (file name stem) -> task name used in clbench
TASK_NAMES: dict[str, str] = {
    "pathmnist": "PathMNIST",
    "dermamnist": "DermaMNIST",
    "bloodmnist": "BloodMNIST",
    "organamnist": "OrganAMNIST",
    "octmnist": "OCTMNIST",
    "retinamnist": "RetinaMNIST",
    "breastmnist": "BreastMNIST",
    "pneumoniamnist": "PneumoniaMNIST",
    "tissuemnist": "TissueMNIST",
}

LABELS: dict[str, tuple[str, ...]] = {
    "pathmnist": (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    ),
    "dermamnist": (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions",
    ),
    "bloodmnist": (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
        "neutrophil", "platelet",
    ),
    "organamnist": (
        "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
        "lung-right", "pancreas", "spleen",
    ),
    "octmnist": ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
    "retinamnist": ("0", "1", "2", "3", "4"),
    "breastmnist": ("malignant", "normal, benign"),
    "pneumoniamnist": ("normal", "pneumonia"),
    "tissuemnist": (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb",
    ),
}

PROMPT_NAMES: dict[str, tuple[str, ...]] = {
    **LABELS,
    "retinamnist": tuple(f"diabetic retinopathy grade {g}" for g in LABELS["retinamnist"]),
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "pathmnist": ("a histopathology image of {}.", "an H&E stained colon tissue patch of {}."),
    "dermamnist": ("a dermatoscopic image of {}.", "a skin lesion photo showing {}."),
    "bloodmnist": ("a microscopic image of a blood cell: {}.", "a blood smear showing a {}."),
    "organamnist": ("an axial abdominal CT slice of the {}.", "a CT image of the {}."),
    "octmnist": ("a retinal OCT scan showing {}.", "an optical coherence tomography image of {}."),
    "retinamnist": ("a fundus photograph with {}.", "a retinal image showing {}."),
    "breastmnist": ("a breast ultrasound image that is {}.", "an ultrasound of a breast lesion: {}."),
    "pneumoniamnist": ("a pediatric chest X-ray showing {}.", "a chest radiograph: {}."),
    "tissuemnist": ("a kidney cortex microscopy image of {}.", "a microscopy image of kidney cells: {}."),
}
