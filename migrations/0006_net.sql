-- The net capability: the operator's rules for outbound requests, the secrets fazt injects
-- into them, and the log of every call. `app` is NULL for what applies to every app; an app's
-- own rows go with it (ON DELETE CASCADE). NULLs are distinct in a UNIQUE constraint, so the
-- one-row-per-name rules are expression indexes over ifnull(app, '').

-- `fazt net allow DOMAIN [--app APP]`: once an app has a rule (its own or one for every app),
-- it may reach only hosts a rule matches (and its manifest allows). `domain` is a host or
-- '*.example.com'. A rule may also limit the rate of calls (a token bucket per app and rule)
-- and let GET responses be cached for cache_ttl_s.
CREATE TABLE net_rules (
    app TEXT REFERENCES apps(name) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    rate_per_s REAL,                       -- NULL: the server's net_rate_per_s
    burst INTEGER,                         -- NULL: the server's net_rate_burst
    cache_ttl_s INTEGER,                   -- NULL: not cached
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX net_rules_key ON net_rules(ifnull(app, ''), domain);

-- `fazt secret set NAME [--app APP] --as bearer|header:NAME|query:NAME [--domain D]`. The value
-- is encrypted with the rest of the database; it is never returned by the API (only masked).
CREATE TABLE net_secrets (
    app TEXT REFERENCES apps(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    inject TEXT NOT NULL CHECK (inject IN ('bearer', 'header', 'query')),
    param TEXT,                            -- the header or query parameter's name
    domain TEXT,                           -- NULL: the host the call is made to
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX net_secrets_key ON net_secrets(ifnull(app, ''), name);

-- One row per net.fetch call, written in batches. No query string and no secret is stored.
-- No foreign key: the log store deletes an app's rows itself when the app is removed.
CREATE TABLE net_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: readers page and follow by id
    ts TEXT NOT NULL,                      -- UTC ISO 8601 with milliseconds
    app TEXT NOT NULL,
    request_id TEXT,
    method TEXT NOT NULL,
    host TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,                        -- NULL: no response (see error)
    bytes_out INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    error TEXT,                            -- the error code, e.g. net_timeout
    cached INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX net_log_app ON net_log(app, id);
