-- Player link groups (docs/security.md, "Cross-brand players"). A
-- registration's `player_ref` makes one global player only among brands of
-- the same group; '' is the operator's shared group (every brand created
-- before this column existed). Set when a brand is created, never changed.
ALTER TABLE brands ADD COLUMN player_link_group String DEFAULT '';
