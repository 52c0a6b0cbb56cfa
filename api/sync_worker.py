"""Vercel function: the sync worker, push consumer of the sync queue topic (private: Vercel
Queues invokes it through its `experimentalTriggers` in vercel.json; no public route). Each
delivery is confirmed with the queue service before any work (functions/jobs/worker.py)."""

from functions.jobs.routes import worker_router
from shared.web import create_app

routers = (worker_router,)
app = create_app(*routers)
