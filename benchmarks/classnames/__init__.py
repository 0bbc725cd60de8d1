"""Class names, class orders and prompt templates, as published by the papers clbench reproduces.

Pure data (no imports beyond typing): ``imagenet`` (CLIP's ImageNet-1k names, wnids and 80 templates),
``cifar100`` (iCaRL class order, CLIP's CIFAR templates), ``mtil`` (ZSCL's MTIL names and templates),
``medmnist`` (MedMNIST label names).
"""
