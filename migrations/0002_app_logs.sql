-- Output of apps' serverless JavaScript (console.log, log.info ...), one row per line.
-- No foreign key to apps: lines are written in batches apart from deploys, and the log store
-- deletes an app's lines itself when the app is removed (AppLogStore.delete_app).
CREATE TABLE app_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: readers page and follow by id
    app TEXT NOT NULL,
    ts TEXT NOT NULL,                      -- UTC ISO 8601 with milliseconds: 2026-11-22T05:14:45.123Z
    level TEXT NOT NULL,                   -- debug, info, warn or error
    request_id TEXT,
    message TEXT NOT NULL
);
CREATE INDEX app_logs_app ON app_logs(app, id);
