// tests/lake/check_parquet.mjs -- DuckDB, a reader nobody here wrote, reads
// the Parquet files tests/lake/pq_sample wrote and every one of them is
// compared with the JSON written beside it:
//   - the column names and the types DuckDB derives (SMALLINT, DECIMAL(p,s),
//     TIMESTAMP WITH TIME ZONE, UUID, ...), and parquet_schema()'s
//     repetition, converted and logical types;
//   - every value of every row (read_parquet, in file order), exactly: bits
//     of floats, unscaled decimals, days, microseconds, bytes, text;
//   - per row group and column (parquet_metadata): row counts, ZSTD, the
//     encodings, null_count, and min/max against the ones computed here from
//     the rows (signed, IEEE without NaN with a zero min -0.0 and a zero max
//     +0.0, bytewise for text and bytes); a min/max longer than the writer's
//     limit, or not finite (DuckDB shows none), must be absent;
//   - the file's row count, size, and the whole-file statistics the writer
//     reported (pq_stats_get) against the ones computed from the rows.
// usage: node check_parquet.mjs NODE_DIR DIR
//   NODE_DIR holds node_modules/@duckdb/node-api; DIR the samples.
// Prints one line per file and "N passed, N failed"; exit 1 on any failure.
import fs from 'node:fs';
import path from 'node:path';
import { duckdb, sql } from './duckdb.mjs';

const [nodeDir, dir] = process.argv.slice(2);
if (!nodeDir || !dir) {
    console.error('usage: node check_parquet.mjs NODE_DIR DIR');
    process.exit(2);
}
const con = await duckdb(nodeDir);

let passed = 0, failed = 0;
let problems = [];
function fail(msg) {
    if (problems.length < 20) problems.push(msg);
    failed++;
}
function check(cond, msg) {
    if (cond) passed++;
    else fail(msg);
}
const ident = (s) => `"${s.replaceAll('"', '""')}"`;

// ------------------------------------------------------------ types

// The DuckDB type a column of the writer's schema must come out as.
function duckdbType(c) {
    switch (c.logical) {
    case 'STRING': return 'VARCHAR';
    case 'INT16': return 'SMALLINT';
    case 'DATE': return 'DATE';
    case 'TIMESTAMP': return 'TIMESTAMP WITH TIME ZONE';
    case 'DECIMAL': return `DECIMAL(${c.precision},${c.scale})`;
    case 'UUID': return 'UUID';
    }
    return { BOOLEAN: 'BOOLEAN', INT32: 'INTEGER', INT64: 'BIGINT', FLOAT: 'FLOAT', DOUBLE: 'DOUBLE',
             BYTE_ARRAY: 'BLOB', FIXED_LEN_BYTE_ARRAY: 'BLOB' }[c.physical];
}

// What parquet_schema() must show: converted type and the logical type's name.
function schemaAnnotation(c) {
    switch (c.logical) {
    case 'STRING': return ['UTF8', /^StringType\(/];
    case 'INT16': return ['INT_16', /^IntType\(.*isSigned=1/];
    case 'DATE': return ['DATE', /^DateType\(/];
    case 'TIMESTAMP': return ['TIMESTAMP_MICROS', /^TimestampType\(isAdjustedToUTC=1, unit=TimeUnit\(MILLIS=<null>, MICROS=MicroSeconds\(\)/];
    case 'DECIMAL': return ['DECIMAL', new RegExp(`^DecimalType\\(scale=${c.scale}, precision=${c.precision}\\)`)];
    case 'UUID': return [null, /^UUIDType\(/];
    }
    return [null, null];
}

// ------------------------------------------------------------ values

const hex = (bytes) => Buffer.from(bytes).toString('hex');
function floatBits(x) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(x);
    return b.readUInt32LE().toString(16).padStart(8, '0');
}
function doubleBits(x) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(x);
    return b.readBigUInt64LE().toString(16).padStart(16, '0');
}

// A DuckDB value in the JSON's canonical form for column C.
function canonical(c, v) {
    if (v === null || v === undefined) return null;
    switch (duckdbType(c)) {
    case 'BOOLEAN': return v;
    case 'SMALLINT': case 'INTEGER': return v;
    case 'BIGINT': return v.toString();
    case 'FLOAT': return floatBits(v);
    case 'DOUBLE': return doubleBits(v);
    case 'VARCHAR': return v;
    case 'BLOB': return hex(v.bytes);
    case 'DATE': return v.days;
    case 'TIMESTAMP WITH TIME ZONE': return v.micros.toString();
    case 'UUID': return v.toString().replaceAll('-', '');
    }
    if (c.logical === 'DECIMAL') return v.value.toString();
    throw new Error(`no canonical form for ${duckdbType(c)}`);
}

// Is canonical value A before B in C's sort order (-1, 0, 1)?  null for NaN.
function order(c, a, b) {
    const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
    switch (c.physical) {
    case 'BOOLEAN': return cmp(a ? 1 : 0, b ? 1 : 0);
    case 'INT32': return c.logical === 'DECIMAL' ? cmp(BigInt(a), BigInt(b)) : cmp(a, b);
    case 'INT64': return cmp(BigInt(a), BigInt(b));
    case 'FLOAT': case 'DOUBLE': return cmp(toFloat(c, a), toFloat(c, b));
    }
    if (c.logical === 'DECIMAL') return cmp(BigInt(a), BigInt(b));
    const bytes = (x) => (c.logical === 'STRING' ? Buffer.from(x, 'utf8') : Buffer.from(x, 'hex'));
    return Buffer.compare(bytes(a), bytes(b));
}
function toFloat(c, bits) {
    if (c.physical === 'FLOAT') {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(parseInt(bits, 16));
        return b.readFloatLE();
    }
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt('0x' + bits));
    return b.readDoubleLE();
}
const isFloat = (c) => c.physical === 'FLOAT' || c.physical === 'DOUBLE';

// Bytes the writer stores a canonical value's min/max in.
function statBytes(c, v) {
    if (c.logical === 'STRING') return Buffer.byteLength(v, 'utf8');
    if (c.physical === 'BYTE_ARRAY' || (c.physical === 'FIXED_LEN_BYTE_ARRAY' && c.logical !== 'DECIMAL'))
        return v.length / 2;
    return c.physical === 'FIXED_LEN_BYTE_ARRAY' ? c.length : 8;
}

// null_count, nan_count, min, max of canonical values VALS for column C.
function stats(c, vals) {
    let nulls = 0, nans = 0, min = null, max = null;
    for (const v of vals) {
        if (v === null) { nulls++; continue; }
        if (isFloat(c) && Number.isNaN(toFloat(c, v))) { nans++; continue; }
        if (min === null || order(c, v, min) < 0) min = v;
        if (max === null || order(c, v, max) > 0) max = v;
    }
    if (isFloat(c) && min !== null) {
        // a zero min is -0.0, a zero max +0.0
        const neg0 = c.physical === 'FLOAT' ? '80000000' : '8000000000000000';
        const pos0 = c.physical === 'FLOAT' ? '00000000' : '0000000000000000';
        if (toFloat(c, min) === 0) min = neg0;
        if (toFloat(c, max) === 0) max = pos0;
    }
    return { nulls, nans, min, max };
}

// ------------------------------------------------------------ one file

async function rows(q) {
    return (await con.runAndReadAll(q)).getRows();
}

async function checkFile(jsonPath) {
    const exp = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
    const file = path.join(path.dirname(jsonPath), exp.file);
    const cols = exp.columns;
    const before = failed;

    check(fs.statSync(file).size === exp.file_size, `${exp.file}: size ${fs.statSync(file).size}, writer said ${exp.file_size}`);
    check(exp.num_rows === exp.rows.length, `${exp.file}: writer counted ${exp.num_rows} rows of ${exp.rows.length}`);

    // names and types
    const desc = await rows(`DESCRIBE SELECT * FROM read_parquet(${sql(file)})`);
    check(desc.length === cols.length, `${exp.file}: ${desc.length} columns, want ${cols.length}`);
    cols.forEach((c, k) => {
        check(desc[k] && desc[k][0] === c.name, `${exp.file}: column ${k} named ${desc[k] && desc[k][0]}, want ${c.name}`);
        check(desc[k] && desc[k][1] === duckdbType(c), `${exp.file}: ${c.name} is ${desc[k] && desc[k][1]}, want ${duckdbType(c)}`);
    });
    const schema = await rows(`SELECT name, type, type_length, repetition_type, converted_type, scale, precision, logical_type, num_children
                               FROM parquet_schema(${sql(file)})`);
    check(schema.length === cols.length + 1 && Number(schema[0][8]) === cols.length, `${exp.file}: schema root`);
    cols.forEach((c, k) => {
        const [name, type, len, rep, conv, scale, prec, logical] = schema[k + 1] || [];
        const [wantConv, wantLogical] = schemaAnnotation(c);
        check(name === c.name && type === c.physical && rep === 'OPTIONAL', `${exp.file}: ${c.name}: schema ${name} ${type} ${rep}`);
        check((len === null ? 0 : Number(len)) === c.length, `${exp.file}: ${c.name}: type_length ${len}`);
        check(conv === wantConv, `${exp.file}: ${c.name}: converted_type ${conv}, want ${wantConv}`);
        check(wantLogical === null ? logical === null : wantLogical.test(logical || ''),
              `${exp.file}: ${c.name}: logical_type ${logical}`);
        if (c.logical === 'DECIMAL')
            check(Number(scale) === c.scale && Number(prec) === c.precision, `${exp.file}: ${c.name}: scale/precision`);
    });

    // every value, in file order
    const got = await rows(`SELECT * EXCLUDE (file_row_number) FROM read_parquet(${sql(file)}, file_row_number = true)
                            ORDER BY file_row_number`);
    check(got.length === exp.rows.length, `${exp.file}: ${got.length} rows, want ${exp.rows.length}`);
    let bad = 0;
    for (let r = 0; r < Math.min(got.length, exp.rows.length); r++) {
        for (let k = 0; k < cols.length; k++) {
            const g = canonical(cols[k], got[r][k]), e = exp.rows[r][k];
            if (g !== e) {
                if (bad++ < 5) fail(`${exp.file}: row ${r} ${cols[k].name}: ${JSON.stringify(g)}, want ${JSON.stringify(e)}`);
            }
        }
    }
    check(bad === 0, `${exp.file}: ${bad} values differ`);

    // per row group: counts and statistics, the min/max read back as the column's type
    const groups = await rows(`SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(${sql(file)}) ORDER BY 1`);
    let first = 0;
    const groupStarts = groups.map(([, n]) => { const s = first; first += Number(n); return [s, Number(n)]; });
    check(first === exp.rows.length, `${exp.file}: row groups hold ${first} rows`);
    for (let k = 0; k < cols.length; k++) {
        const c = cols[k], t = duckdbType(c);
        const meta = await rows(`SELECT row_group_id, num_values, compression, encodings, stats_null_count,
                                        TRY_CAST(stats_min_value AS ${t}), TRY_CAST(stats_max_value AS ${t}),
                                        stats_min_value IS NULL, stats_max_value IS NULL, path_in_schema
                                 FROM parquet_metadata(${sql(file)}) WHERE column_id = ${k} ORDER BY row_group_id`);
        check(meta.length === groups.length, `${exp.file}: ${c.name}: ${meta.length} chunks`);
        meta.forEach(([g, nv, codec, enc, nulls, mn, mx, noMin, noMax, pathIn], i) => {
            const [start, n] = groupStarts[i];
            const s = stats(c, exp.rows.slice(start, start + n).map((row) => row[k]));
            const where = `${exp.file}: group ${g} ${c.name}`;
            check(Number(nv) === n && codec === 'ZSTD' && enc === 'PLAIN, RLE' && pathIn === c.name,
                  `${where}: num_values ${nv} codec ${codec} encodings ${enc}`);
            check(Number(nulls) === s.nulls, `${where}: null_count ${nulls}, want ${s.nulls}`);
            const absent = s.min === null ||
                statBytes(c, s.min) > exp.stats_max_bytes || statBytes(c, s.max) > exp.stats_max_bytes;
            if (absent) {
                check(noMin && noMax, `${where}: min/max present, want none`);
                return;
            }
            // DuckDB shows no min/max that is not finite
            const shown = (v) => !isFloat(c) || Number.isFinite(toFloat(c, v));
            check(shown(s.min) ? canonical(c, mn) === s.min : noMin, `${where}: min ${JSON.stringify(canonical(c, mn))}, want ${s.min}`);
            check(shown(s.max) ? canonical(c, mx) === s.max : noMax, `${where}: max ${JSON.stringify(canonical(c, mx))}, want ${s.max}`);
        });
        // the writer's whole-file statistics (for Delta's "add" stats)
        const f = stats(c, exp.rows.map((row) => row[k])), w = exp.file_stats[k];
        check(w.null_count === f.nulls && w.nan_count === f.nans && (w.min ?? null) === f.min && (w.max ?? null) === f.max,
              `${exp.file}: ${c.name}: pq_stats ${JSON.stringify(w).slice(0, 200)}, want ${JSON.stringify(f).slice(0, 200)}`);
    }
    const fm = await rows(`SELECT num_rows, num_row_groups, format_version, created_by FROM parquet_file_metadata(${sql(file)})`);
    check(Number(fm[0][0]) === exp.rows.length && Number(fm[0][1]) === groups.length && Number(fm[0][2]) === 1 &&
          /^lakefs version /.test(fm[0][3]), `${exp.file}: file metadata ${fm[0]}`);

    console.log(`${failed === before ? 'ok  ' : 'FAIL'} ${exp.file}: ${exp.rows.length} rows, ${cols.length} columns, ${groups.length} row groups`);
    for (const p of problems) console.log(`     ${p}`);
    problems = [];
}

const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
check(files.length > 0, `no samples in ${dir}`);
for (const f of files) {
    try {
        await checkFile(path.join(dir, f));
    } catch (e) {
        fail(`${f}: ${e.message}`);
        console.log(`FAIL ${f}: ${e.message}`);
    }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
