-- The points report (issue 21, part 2) sums an organisation's entries by the time the ledger
-- recorded them: one index instead of a scan of the whole ledger per report.
CREATE INDEX ledger_entry_org_recorded ON ledger_entry (org_id, recorded_at);
