"""The job system: the dispatcher, "sync now", the queue consumer (worker) and the registry of
job handlers (see service.py)."""
