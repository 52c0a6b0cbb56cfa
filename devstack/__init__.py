"""Local development stack: simulated AWS, embedded Postgres, local server, demo seed. Never imported by production code."""  # noqa: E501
