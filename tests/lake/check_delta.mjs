// tests/lake/check_delta.mjs -- an exported Delta table read by DuckDB, a
// reader nobody here wrote, against the rows PostgreSQL returned.
//   - the table's _delta_log is replayed here (DuckDB's delta extension
//     cannot be installed: extension auto-install and auto-load are off):
//     commits 0..VERSION in order, add/remove paths, the txn version, the
//     schemaString; every line must be JSON with exactly one action;
//   - DuckDB reads the files of that version (read_parquet) and every row
//     is turned into PostgreSQL's form: integers, decimals and booleans as
//     PostgreSQL prints them, floats and bytes as hex of their bits, dates
//     as days and timestamps as microseconds since 1970, strings as they are;
//   - the multiset of rows must equal EXPECTED's exactly, the column names
//     and Delta types must match the Parquet files, numRecords the rows,
//     each add's nullCount the NULLs read, minValues/maxValues the values
//     read (integers, decimals, dates, timestamps to the millisecond rounded
//     outward, strings up to 256 bytes; floats bounded; none for others).
// usage: node check_delta.mjs NODE_DIR TABLE_DIR EXPECTED [VERSION]
//   EXPECTED: first line a JSON array of column names, then per row a JSON
//   array of 2 cells per column: COL::text and an alternative form (see
//   tests/e2e/t101_export.sh, expect_rows).  Prints the version, its txn
//   version and "N rows equal"; exit 1 on any difference.
import fs from 'node:fs';
import path from 'node:path';
import { replay } from './delta_log.mjs';
import { duckdb, sql } from './duckdb.mjs';

const [nodeDir, tableDir, expectedPath, versionArg] = process.argv.slice(2);
if (!nodeDir || !tableDir || !expectedPath) {
    console.error('usage: node check_delta.mjs NODE_DIR TABLE_DIR EXPECTED [VERSION]');
    process.exit(2);
}
const con = await duckdb(nodeDir);

function die(msg) {
    console.log(`FAIL ${msg}`);
    process.exit(1);
}

// ------------------------------------------------------------ the log
const { version, commits, files, schema, txn, protocol } = replay(tableDir, versionArg, die);
if (!protocol || protocol.minReaderVersion !== 1 || protocol.minWriterVersion !== 2) die(`protocol ${JSON.stringify(protocol)}`);
if (!schema || schema.type !== 'struct') die('no schema');

// ------------------------------------------------------------ the rows
const paths = [...files].map((f) => path.join(tableDir, decodeURIComponent(f)));
for (const p of paths) if (!fs.existsSync(p)) die(`version ${version} names ${p}, which is missing`);
const list = `[${paths.map(sql).join(', ')}]`;
const desc = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${list})`)).getRows();
const exp = fs.readFileSync(expectedPath, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
const names = exp.shift();
if (JSON.stringify(desc.map((d) => d[0])) !== JSON.stringify(names)) die(`columns ${desc.map((d) => d[0])}, want ${names}`);
if (JSON.stringify(schema.fields.map((f) => f.name)) !== JSON.stringify(names)) die('schemaString names differ');
const deltaType = { SMALLINT: 'short', INTEGER: 'integer', BIGINT: 'long', FLOAT: 'float', DOUBLE: 'double',
                    BOOLEAN: 'boolean', VARCHAR: 'string', BLOB: 'binary', DATE: 'date',
                    'TIMESTAMP WITH TIME ZONE': 'timestamp' };
desc.forEach(([name, type], k) => {
    const want = type.startsWith('DECIMAL') ? type.toLowerCase().replace(/\s/g, '') : deltaType[type];
    if (schema.fields[k].type !== want) die(`${name}: Delta type ${schema.fields[k].type}, Parquet ${type}`);
});

const hexOf = (buf) => Buffer.from(buf).toString('hex');
function bits(type, x) {
    const b = Buffer.alloc(type === 'FLOAT' ? 4 : 8);
    if (type === 'FLOAT') b.writeFloatBE(x); else b.writeDoubleBE(x);
    return b.toString('hex');
}
function decimal(v, scale) {
    const neg = v < 0n;
    let s = (neg ? -v : v).toString().padStart(scale + 1, '0');
    if (scale > 0) s = s.slice(0, s.length - scale) + '.' + s.slice(s.length - scale);
    return (neg ? '-' : '') + s;
}
// cell k of a DuckDB row in EXPECTED's form: [text or null, alt or null]
function canon(type, v) {
    if (v === null || v === undefined) return null;
    switch (type) {
    case 'SMALLINT': case 'INTEGER': case 'BIGINT': return ['text', v.toString()];
    case 'BOOLEAN': return ['text', v ? 'true' : 'false'];
    case 'VARCHAR': return ['text', v];
    case 'FLOAT': case 'DOUBLE': return ['alt', bits(type, v)];
    case 'BLOB': return ['alt', hexOf(v.bytes)];
    case 'DATE': return ['alt', String(v.days)];
    case 'TIMESTAMP WITH TIME ZONE': return ['alt', v.micros.toString()];
    }
    const m = /^DECIMAL\((\d+),(\d+)\)$/.exec(type);
    if (m) return ['text', decimal(BigInt(v.value), Number(m[2]))];
    throw new Error(`no canonical form for ${type}`);
}
const got = (await con.runAndReadAll(`SELECT * FROM read_parquet(${list})`)).getRows()
    .map((row) => JSON.stringify(row.map((v, k) => {
        const c = canon(desc[k][1], v);
        return c === null ? null : c[1];
    })));
const want = exp.map((row) => JSON.stringify(names.map((_, k) => {
    if (row[2 * k] === null) return null;
    const c = desc[k][1];
    const alt = ['FLOAT', 'DOUBLE', 'BLOB', 'DATE', 'TIMESTAMP WITH TIME ZONE'].includes(c);
    return alt ? row[2 * k + 1] : row[2 * k];
})));
const numRecords = [...files].reduce((n, f) => n + files[f].numRecords, 0);
if (numRecords !== got.length) die(`numRecords ${numRecords}, DuckDB read ${got.length} rows`);
// every add action's stats against the rows of its own file: nullCount of
// every column, min/max of numbers, decimals, dates, timestamps, strings
for (const f of files) {
    const st = files[f].st;
    const one = sql(path.join(tableDir, decodeURIComponent(f)));
    const rawRows = (await con.runAndReadAll(`SELECT * FROM read_parquet([${one}])`)).getRows();
    if (st.numRecords !== rawRows.length) die(`${f}: stats numRecords ${st.numRecords}, the file holds ${rawRows.length} rows`);
    desc.forEach(([name, type], k) => {
        const vals = rawRows.map((r) => r[k]);
        const nulls = vals.filter((v) => v === null).length;
        if (st.nullCount[name] !== nulls) die(`${name}: stats nullCount ${st.nullCount[name]}, ${nulls} NULLs read`);
        const nn = vals.filter((v) => v !== null);
        const has = name in st.minValues, hasMax = name in st.maxValues;
        if (!nn.length) {
            if (has || hasMax) die(`${name}: a min/max with no values`);
            return;
        }
        const pick = (cmp) => [nn.reduce((a, b) => (cmp(b, a) < 0 ? b : a)), nn.reduce((a, b) => (cmp(b, a) > 0 ? b : a))];
        const bigCmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
        const dec = /^DECIMAL\((\d+),(\d+)\)$/.exec(type);
        let mn, mx, want;
        if (['SMALLINT', 'INTEGER', 'BIGINT'].includes(type)) {
            [mn, mx] = pick((a, b) => bigCmp(BigInt(a), BigInt(b)));
            want = [Number(mn), Number(mx)];
        } else if (dec) {
            [mn, mx] = pick((a, b) => bigCmp(BigInt(a.value), BigInt(b.value)));
            want = [Number(decimal(BigInt(mn.value), Number(dec[2]))), Number(decimal(BigInt(mx.value), Number(dec[2])))];
        } else if (type === 'DATE') {
            [mn, mx] = pick((a, b) => a.days - b.days);
            const iso = (d) => new Date(d * 86400000).toISOString().slice(0, 10);
            const inRange = (d) => d >= -719162 && d <= 2932896;
            want = [inRange(mn.days) ? iso(mn.days) : undefined, inRange(mx.days) ? iso(mx.days) : undefined];
        } else if (type === 'TIMESTAMP WITH TIME ZONE') {
            [mn, mx] = pick((a, b) => bigCmp(a.micros, b.micros));
            // milliseconds, the min rounded down and the max up; years 1..9999
            const ms = (us, up) => { let m = us / 1000n; if (us % 1000n < 0n) m -= 1n; if (up && us % 1000n !== 0n) m += 1n; return m; };
            const iso = (m) => (m >= -62135596800000n && m <= 253402300799999n ? new Date(Number(m)).toISOString() : undefined);
            want = [iso(ms(mn.micros, false)), iso(ms(mx.micros, true))];
        } else if (type === 'VARCHAR') {
            [mn, mx] = pick((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
            want = [Buffer.byteLength(mn) <= 256 ? mn : undefined, Buffer.byteLength(mx) <= 256 ? mx : undefined];
        } else if (type === 'DOUBLE' || type === 'FLOAT') {
            const fin = nn.filter((v) => Number.isFinite(v));
            // a min/max, when given, must bound the finite values
            if (has && fin.some((v) => v < st.minValues[name])) die(`${name}: a value below the stats min`);
            if (hasMax && fin.some((v) => v > st.maxValues[name])) die(`${name}: a value above the stats max`);
            return;
        } else {
            if (has || hasMax) die(`${name}: min/max for ${type}`);
            return;
        }
        if (st.minValues[name] !== want[0] || st.maxValues[name] !== want[1])
            die(`${name}: stats min/max ${st.minValues[name]}/${st.maxValues[name]}, want ${want[0]}/${want[1]}`);
    });
}
const groups = (await con.runAndReadAll(`SELECT sum(num_row_groups) FROM parquet_file_metadata(${list})`)).getRows()[0][0];
got.sort();
want.sort();
if (got.length !== want.length) die(`${got.length} rows, PostgreSQL had ${want.length}`);
let bad = 0;
for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) {
        if (bad++ < 5) console.log(`  differs: got  ${got[i].slice(0, 400)}\n           want ${want[i].slice(0, 400)}`);
    }
}
if (bad) die(`${bad} rows differ`);
console.log(`ok version ${version} of ${commits.length}, txn ${txn && txn.appId} ${txn && txn.version}, ` +
            `${files.size} files, ${groups} row groups, ${got.length} rows equal, stats agree`);
