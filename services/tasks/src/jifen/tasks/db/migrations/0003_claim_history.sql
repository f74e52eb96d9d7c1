-- Claims and their withdrawals join the status history (and its events).
ALTER TABLE status_change DROP CONSTRAINT status_change_subject_check,
    ADD CONSTRAINT status_change_subject_check
        CHECK (subject IN ('claim', 'completion', 'hazard', 'need', 'appeal'));
