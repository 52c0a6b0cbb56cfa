"""The small kit every domain needs once: the clock, months, keyset pages, request parameters.

    clock    Clock, utc_now: aware UTC datetimes (code takes a clock; only the root picks one)
    months   first-of-month dates: month_start, month_of, add_months, month_span, parse/format
    pages    page sizes, opaque keyset cursors, split_page (fetch limit + 1, trim, next cursor)
    params   pure validators of request values: text, UTC datetimes, windows, decimals, Accept
    http     FastAPI parameter annotations and response helpers shared by the domains' routes
    jsondepth  how deep a JSON text nests, without parsing it (bound before json.loads)
    schemas  the one pydantic base of models built from stored rows (`from_attributes`)

Pure apart from `http` (FastAPI); nothing here does I/O.
"""
