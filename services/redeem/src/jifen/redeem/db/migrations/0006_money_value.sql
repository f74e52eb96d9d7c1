-- What a reward is worth in money (issue 21, part 1): goods worth over 250,000 yuan redeemed
-- is a figure the schemes report, and a merchant settles each month for what it handed over.
-- In fen (1 yuan = 100 fen), a whole number; NULL: no money value stated. Fixed when the
-- reward is listed (PATCH does not change it: a new price is a new reward), so a month's
-- statement reads the same whenever it is drawn.
ALTER TABLE reward ADD COLUMN value_fen integer CHECK (value_fen >= 0);

-- a merchant's month: its fulfilled redemptions by the time they were handed over
CREATE INDEX redemption_fulfilled ON redemption (org_id, fulfilled_at) WHERE status = 'fulfilled';
