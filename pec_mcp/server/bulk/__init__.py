"""The ``bulk`` toolset: durable bulk PEC jobs, their progress and their retries."""
