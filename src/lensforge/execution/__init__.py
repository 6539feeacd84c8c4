"""The execution chain, top to bottom.

``analysis`` (front door: resolve the tool once, fix the job's time limit and retry policy)
→ ``jobs`` (job lifecycle; the only writer of job status) with ``dispatch`` (claiming and
capacity) and ``leases`` (heartbeat and recovery) → ``plugins`` (hands jobs to an executor
through the ``middleware`` chain; ``verdicts`` say what became of them) → ``executors``
(inline, thread, local worker processes: ``worker``, ``channel``) → ``tool_runner`` (the
only code that calls a tool).
"""
