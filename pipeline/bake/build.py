"""The build and store steps: the run's builder makes the image, the target keeps it for good.

``build`` hands the layer to the builder (Packer's qemu or amazon-ebs builder,
or any other registered for the target), which returns where the image is.
``store`` asks the target to keep it (a content-addressed, read-only file; tagged
and shared AMIs in every region) and records the artifacts in the catalog, so
an interrupted bake that got this far is verified next time, not rebuilt.
"""

from __future__ import annotations

from pipeline.bake.layer import Layer
from pipeline.bake.run import Run


def step_build(run: Run, layer: Layer) -> None:
    """The builder builds the layer on its source with the layer's playbook."""
    layer.built = run.builders[layer.spec.name].build(run, layer)


def step_store(run: Run, layer: Layer) -> None:
    """The target keeps the built image; the catalog learns its artifacts."""
    layer.artifacts = run.target.store(run, layer)
    for artifact in layer.artifacts:
        run.catalog.add_artifact(layer.spec.name, layer.version, artifact)
