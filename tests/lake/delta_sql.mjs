// tests/lake/delta_sql.mjs -- one query by DuckDB over the newest version
// of an exported Delta table (its _delta_log replayed by delta_log.mjs),
// for checks of tables too large to compare row by row: the files of the
// version are the view "t"; every row of the result is printed, its values
// separated by "|".  Also checks that the adds' numRecords sum to the rows
// DuckDB reads, and prints "files N" first.
// usage: node delta_sql.mjs NODE_DIR TABLE_DIR SQL
import path from 'node:path';
import { replay } from './delta_log.mjs';
import { duckdb, sql } from './duckdb.mjs';

const [nodeDir, tableDir, query] = process.argv.slice(2);
if (!nodeDir || !tableDir || !query) {
    console.error('usage: node delta_sql.mjs NODE_DIR TABLE_DIR SQL');
    process.exit(2);
}
function die(msg) {
    console.log(`FAIL ${msg}`);
    process.exit(1);
}
const con = await duckdb(nodeDir);
const { files } = replay(tableDir, undefined, die);
const list = `[${[...files].map((f) => sql(path.join(tableDir, decodeURIComponent(f)))).join(', ')}]`;
await con.run(`CREATE VIEW t AS SELECT * FROM read_parquet(${list})`);
const rows = Number((await con.runAndReadAll('SELECT count(*) FROM t')).getRows()[0][0]);
const numRecords = [...files].reduce((n, f) => n + files[f].numRecords, 0);
if (numRecords !== rows) die(`numRecords ${numRecords}, DuckDB read ${rows} rows`);
console.log(`files ${files.size}`);
for (const row of (await con.runAndReadAll(query)).getRows())   // not console.log: values may hold '%'
    process.stdout.write(row.map((v) => (v === null ? '' : String(v))).join('|') + '\n');
