"""Cost sync and the sync fan-out: one account's Cost Explorer sync (`sync`, pure parts in
`transform`), the cron dispatcher (`dispatch`), the Vercel Queues producer and push consumer
(`queue`), the registry of job kinds the worker runs (`registry`), and their routes."""
