-- Which JS runtime a deploy's api/main.js runs on: 'fazt' (a handler module) or 'go' (a
-- script written for the earlier Go fazt, run by the compatibility runtime). Decided at deploy
-- from the manifest and api/main.js, kept with the deploy so a rollback restores it.
ALTER TABLE deploys ADD COLUMN runtime TEXT NOT NULL DEFAULT 'fazt'
    CHECK (runtime IN ('fazt', 'go'));
