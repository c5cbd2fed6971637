-- Named operator credentials (docs/security.md "Operator credentials").
-- Operators hold their own API keys (scope `operator`) with a role (admin,
-- finance, risk_reviewer, read_only) and an owner's name; what they decide,
-- close and pay records that owner. `role` and `owner` are empty for brand
-- and affiliate keys.
ALTER TABLE api_keys MODIFY COLUMN scope Enum8('brand' = 1, 'affiliate' = 2, 'operator' = 3);

ALTER TABLE api_keys ADD COLUMN role String DEFAULT '';

ALTER TABLE api_keys ADD COLUMN owner String DEFAULT '';

-- Who closed a period and who ran a payout (an operator credential's
-- owner, `bootstrap` for the bootstrap token, `job` for the background
-- job); empty on rows written before this column existed.
ALTER TABLE commission_period_closes ADD COLUMN actor String DEFAULT '';

ALTER TABLE commission_runs ADD COLUMN actor String DEFAULT '';
