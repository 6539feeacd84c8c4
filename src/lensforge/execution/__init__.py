"""The execution chain, top to bottom.

``analysis`` (front door) → ``jobs`` (job lifecycle and store) → ``plugins`` (hands jobs to an
executor, maps outcomes) → ``executors`` (inline, thread pool) → ``tool_runner`` (the only code
that calls a tool).
"""
