"""Test plugins of the Ray executor: a tool that declares a GPU (on a GPU-less cluster it
must fail at once with ``resource_exhausted`` naming the GPU, never wait for a node that will
not come), and a long tool that checkpoints as it goes."""

from __future__ import annotations

import time

from lensforge import Plugin, ToolContext, tool


class NeedsGpu(Plugin):
    """One tool that asks Ray for a whole GPU."""

    name = "needs_gpu"
    version = "0.0.1"

    @tool(gpus=1)
    def infer(self) -> dict[str, bool]:
        """Pretend to run a model on the GPU."""
        return {"ok": True}


class Steps(Plugin):
    """A long tool that records a checkpoint per step, some after the last progress poll."""

    name = "steps"
    version = "0.0.1"

    @tool(long=True, timeout_s=30)
    def walk(
        self, n: int = 6, pause: float = 0.1, ctx: ToolContext | None = None
    ) -> dict[str, int]:
        """Take ``n`` steps, checkpointing after each one (the last ones right at the end)."""
        assert ctx is not None
        for step in range(n):
            time.sleep(pause if step < n - 3 else 0)
            ctx.checkpoint({"next": step + 1}, [{"index": step}])
        return {"steps": n}
