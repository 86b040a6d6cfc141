-- Apps' documents (the docs capability) and files (the blobs capability), and the server's
-- own secrets. Like app_kv, every row belongs to an app and goes with it (ON DELETE CASCADE),
-- and `scope` is '' for the app's own data or 'u:<user id>' for docs.user / blobs.user.

-- docs: one row per document. `data` is the document as JSON text, without _id, _createdAt
-- and _updatedAt (they are the columns). A rowid table: the rowid orders documents by
-- insertion, which find() uses to break ties. Indexes an app names in its manifest are partial
-- expression indexes on this table, named "docs:<app>:<hash>", created and dropped with the
-- deploy that names them.
CREATE TABLE app_docs (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,           -- unix ms
    updated_at INTEGER NOT NULL,
    UNIQUE (app, scope, collection, id)
);

-- blobs: one row per key. A rowid table, as the rows are large (WITHOUT ROWID suits small
-- rows). `public` blobs are served to anyone at the app's /_fazt/blobs/<key> URL; others
-- only with a signed URL.
CREATE TABLE app_blobs (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,           -- unix ms
    updated_at INTEGER NOT NULL,
    UNIQUE (app, scope, key)
);

-- Random secrets the server generates once (e.g. the key that signs blob URLs). They live in
-- the encrypted database, so a backup carries them.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
