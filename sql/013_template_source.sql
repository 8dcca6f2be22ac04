-- 013_template_source.sql - what a node needs to run a template version
-- that has left its files.
--
-- A task runs to its end on the version it was created with.  When that
-- version is no longer in a node's files, the node loads it as it was
-- registered: templates.source, the file's text (the jsonb definition does
-- not always read back as the same template: its key order, numbers and
-- some characters change).  nodes.templates: the template versions a node
-- has loaded from its files, renewed with its heartbeat; a version a live
-- node has is left to that node (a rolling deploy).
--
-- Columns without defaults: no table rewrite, the locks are brief.
ALTER TABLE templates ADD COLUMN source text;
ALTER TABLE nodes ADD COLUMN templates bigint[];
