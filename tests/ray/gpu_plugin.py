"""A plugin whose one tool declares a GPU: on a GPU-less Ray cluster it must fail at once
with ``resource_exhausted`` naming the GPU, never wait for a node that will not come."""

from __future__ import annotations

from lensforge import Plugin, tool


class NeedsGpu(Plugin):
    """One tool that asks Ray for a whole GPU."""

    name = "needs_gpu"
    version = "0.0.1"

    @tool(gpus=1)
    def infer(self) -> dict[str, bool]:
        """Pretend to run a model on the GPU."""
        return {"ok": True}
