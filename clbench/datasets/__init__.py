"""Readers of datasets' official on-disk formats, shared by the benchmark families.

One concept per module: ``location`` (where data lives), ``requirements`` (what must exist, and the one-line
error when it does not), ``labeled`` / ``image_files`` (datasets with a ``targets`` list that Avalanche needs),
``split`` (ZSCL's seeded 80/20 split), ``torchvision_sets`` (torchvision readers, checksum-free),
``tiny_imagenet``, ``medmnist_npz``, ``class_folders`` and ``split_csv`` (format readers).
"""
