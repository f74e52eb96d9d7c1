-- What a completion counts (issue 21, part 1). A category declares the unit its completions
-- are counted in (meals, bikes, people, hours, items; the built-in categories' units are in
-- the code, jifen.tasks.domain.jobs.CATEGORY_UNITS); a job how long one completion serves
-- (the national volunteer-service record counts hours); a completion how many it did, in its
-- category's unit at the time (kept beside the number, so a unit changed later misreads
-- nothing). All optional: a job or completion without them counts as an activity only.
ALTER TABLE job_category
    ADD COLUMN unit text CHECK (unit IN ('meals', 'bikes', 'people', 'hours', 'items'));

ALTER TABLE job
    ADD COLUMN service_minutes integer CHECK (service_minutes BETWEEN 1 AND 1440);

ALTER TABLE completion
    ADD COLUMN quantity integer CHECK (quantity BETWEEN 0 AND 100000),
    ADD COLUMN unit     text CHECK (unit IN ('meals', 'bikes', 'people', 'hours', 'items')),
    ADD CONSTRAINT completion_quantity_has_unit CHECK ((quantity IS NULL) = (unit IS NULL));
