-- tests/lake/alltypes.sql -- a table with every type the export maps (issue 7):
-- NULLs, empty strings, extremes, non-ASCII text and column names; and one
-- whose date/timestamp/numeric columns hold what Parquet cannot (infinity,
-- NaN), which the export writes as text with a warning.
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE public.alltypes (
  id int PRIMARY KEY, s smallint, i int, b bigint, r real, d double precision, bo boolean,
  t text, vc varchar(20), ch char(5), by bytea, n numeric(10,2), nbig numeric(38,6), nfree numeric,
  n9 numeric(9,9), dt date, ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb, iv interval,
  arr int[], m mood, "Mixed Name é" text);
INSERT INTO alltypes VALUES
 (1, -32768, -2147483648, -9223372036854775808, -3.4e38, -1.7976931348623157e308, false, '', '', '', '\x',
  -99999999.99, -99999999999999999999999999999999.999999, 'NaN', -0.999999999,
  '4713-01-01 BC', '4713-01-01 00:00:00 BC', '1900-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000',
  '{}', '{}', '-1 day', '{}', 'sad', 'a'),
 (2, 32767, 2147483647, 9223372036854775807, 3.4e38, 1.7976931348623157e308, true, 'héllo wörld €😀', 'ünï', 'ab',
  '\x00ff10', 99999999.99, 99999999999999999999999999999999.999999, 123.456, 0.000000001,
  '5874897-12-31', '294246-12-31 23:59:59.999999', '2026-11-30 12:34:56.789012+05',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, "x"]}', '{"b": null}', '1 year 2 mons 3 days 04:05:06.789',
  '{1,NULL,3}', 'happy', 'ü'),
 (3, NULL, NULL, NULL, 'NaN', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 0, 0, '-0', 0.5, true, E'tab\there\nnewline "q" \\ \u0001', 'x', 'x', '\xdeadbeef', 0, 0.000001, -1e-20, 0,
  '2000-01-01', '2000-01-01 00:00:00', '1970-01-01 00:00:00+00', NULL, 'null', '[]', '0', '{{1,2},{3,4}}', NULL, NULL),
 (5, 1, 1, 1, 1e-45, 5e-324, false, repeat('long text ', 5000), 'y', 'yyyyy', decode(repeat('ab', 3000), 'hex'),
  -0.01, -0.000001, 1e100, -0.000000001, '1970-01-01', '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59.999999+00',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '"x"', '1', '-178000000 years', '{}', 'happy', '日本語');
CREATE TABLE public.unrepresentable (k int, d date, ts timestamptz, n numeric(5,1));
INSERT INTO unrepresentable VALUES (1, 'infinity', '-infinity', 'NaN'), (2, '2020-02-29', '2020-02-29 01:02:03Z', 1.5),
  (3, NULL, NULL, NULL);
CREATE TABLE public.empty (k int, v text);
-- a type without a Parquet mapping: exported as its text form, with a warning
ALTER TABLE public.alltypes ADD COLUMN pt point;
UPDATE public.alltypes SET pt = point(id, -id / 2.0) WHERE id <> 3;
