CREATE TABLE apps (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    current_deploy_id INTEGER REFERENCES deploys(id) DEFERRABLE INITIALLY DEFERRED
) WITHOUT ROWID;
CREATE TABLE deploys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused, even after a remove
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    file_count INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    spa INTEGER NOT NULL DEFAULT 0,
    manifest TEXT,
    source TEXT NOT NULL DEFAULT 'api'
);
CREATE INDEX deploys_app ON deploys(app, id);
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL
) WITHOUT ROWID;
-- File bytes in 256 KiB chunks, so a large file can be streamed and a byte range read without
-- loading the whole file into memory.
CREATE TABLE blob_chunks (
    sha256 TEXT NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (sha256, seq)
);
CREATE TABLE files (
    deploy_id INTEGER NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    PRIMARY KEY (deploy_id, path)
) WITHOUT ROWID;
CREATE INDEX files_sha256 ON files(sha256);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
) WITHOUT ROWID;
