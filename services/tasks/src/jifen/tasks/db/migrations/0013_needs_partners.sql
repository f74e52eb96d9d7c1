-- Needs × resources and community partners (issue 21, part 4).
--
-- The needs list (需求清单: kind 'wish', from door-to-door visits, officers, or residents
-- themselves) and the resources list (资源清单: kind 'offer', from partners) say what, where
-- and when: a job category, a place, a window and how many. An officer matches them and turns
-- the matches into the month's menu; one need can yield several jobs (need_job), each linked to
-- the resource that serves it.
ALTER TABLE need
    ADD COLUMN category     text,
    ADD COLUMN place        text        NOT NULL DEFAULT '',
    ADD COLUMN wanted_from  timestamptz,
    ADD COLUMN wanted_until timestamptz,
    ADD COLUMN quantity     integer     CHECK (quantity > 0),
    ADD COLUMN source       text        NOT NULL DEFAULT 'officer'
                            CHECK (source IN ('visit', 'officer', 'resident', 'partner')),
    ADD COLUMN partner_id   text,
    ADD CONSTRAINT need_window CHECK (wanted_until IS NULL OR wanted_from IS NULL
                                      OR wanted_until > wanted_from);
CREATE INDEX need_match ON need (org_id, community_id, kind, category) WHERE status = 'open';

-- 社区合伙人: agencies, firms, merchants and skilled residents, as an organisation or a team.
-- A partner takes a menu item; then only its members claim places in it and complete it.
CREATE TABLE partner (
    org_id      text        NOT NULL,
    id          text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('organisation', 'team')),
    name        text        NOT NULL,
    contact     text        NOT NULL DEFAULT '',
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);

CREATE TABLE partner_member (
    org_id      text        NOT NULL,
    partner_id  text        NOT NULL,
    account_id  text        NOT NULL,
    added_by    text        NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, partner_id, account_id),
    FOREIGN KEY (org_id, partner_id) REFERENCES partner (org_id, id)
);

ALTER TABLE job ADD COLUMN partner_id text;
ALTER TABLE job ADD CONSTRAINT job_partner
    FOREIGN KEY (org_id, partner_id) REFERENCES partner (org_id, id);

-- the jobs a need became, each with the resource (an offer) that serves it, if any (the
-- index of need.job_id had the name first)
ALTER INDEX need_job RENAME TO need_first_job;
CREATE TABLE need_job (
    org_id       text        NOT NULL,
    need_id      uuid        NOT NULL REFERENCES need (id),
    job_id       uuid        NOT NULL REFERENCES job (id),
    resource_id  uuid        REFERENCES need (id),
    linked_by    text        NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (need_id, job_id)
);
CREATE INDEX need_job_job ON need_job (job_id);
-- the one job a need could become before: one need_job row each
INSERT INTO need_job (org_id, need_id, job_id, linked_by, linked_at)
SELECT n.org_id, n.id, n.job_id, j.created_by, j.created_at
FROM need n JOIN job j ON j.id = n.job_id;
