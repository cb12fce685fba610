"""Data: dataset adapters and their validator (sources/), SynthFER (synthfer/), layout detection, labels, occlusion,
transforms, loaders, and the transfer datasets (CIFAR-10, hyperspectral scenes)."""
