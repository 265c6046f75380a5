// tests/lake/duckdb.mjs -- DuckDB for the lake checks: a connection to an
// in-memory database of the npm package @duckdb/node-api installed in
// NODE_DIR (tests/e2e/lib.sh duckdb_node), with extensions from the package
// or not at all (auto-install and auto-load off: never from the network);
// and SQL string literals.
import { createRequire } from 'node:module';
import path from 'node:path';

export async function duckdb(nodeDir) {
    const require = createRequire(path.resolve(nodeDir) + '/');
    const { DuckDBInstance } = require('@duckdb/node-api');
    const instance = await DuckDBInstance.create(':memory:', {
        autoinstall_known_extensions: 'false',
        autoload_known_extensions: 'false',
    });
    const con = await instance.connect();
    await con.run('SET autoinstall_known_extensions = false');
    await con.run('SET autoload_known_extensions = false');
    return con;
}

export const sql = (s) => `'${s.replaceAll("'", "''")}'`;
