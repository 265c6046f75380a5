// tests/lake/delta_log.mjs -- a Delta table's _delta_log replayed, for the
// DuckDB checks (DuckDB's delta extension cannot be installed here:
// extension auto-install and auto-load are off): commits 0..VERSION in
// order (a gap is an error), add/remove paths with each add's parsed stats,
// the last txn, protocol and schemaString; every line must be JSON with
// exactly one action.
import fs from 'node:fs';
import path from 'node:path';

// replay(TABLE_DIR, VERSION or undefined for the newest, DIE(msg)):
// { version, commits, files, schema, txn, protocol }; FILES is a Set of
// paths with files[path] = the add action (st: its stats, numRecords).
export function replay(tableDir, versionArg, die) {
    const logDir = path.join(tableDir, '_delta_log');
    const commits = fs.readdirSync(logDir).filter((f) => /^\d{20}\.json$/.test(f)).sort();
    commits.forEach((f, i) => { if (Number(f.slice(0, 20)) !== i) die(`commit ${f} out of sequence`); });
    const version = versionArg === undefined ? commits.length - 1 : Number(versionArg);
    if (!(version >= 0 && version < commits.length)) die(`no version ${versionArg} (${commits.length} commits)`);
    const files = new Set();
    let schema = null, txn = null, protocol = null;
    for (let v = 0; v <= version; v++) {
        const lines = fs.readFileSync(path.join(logDir, commits[v]), 'utf8').split('\n').filter((l) => l !== '');
        for (const line of lines) {
            const a = JSON.parse(line);
            const keys = Object.keys(a);
            if (keys.length !== 1) die(`${commits[v]}: a line with ${keys.length} actions`);
            if (a.add) {
                if (typeof a.add.size !== 'number' || a.add.dataChange !== true) die(`${commits[v]}: add without size/dataChange`);
                const st = JSON.parse(a.add.stats);
                a.add.numRecords = st.numRecords;
                a.add.st = st;
                files.add(a.add.path);
                files[a.add.path] = a.add;
            }
            if (a.remove) files.delete(a.remove.path);
            if (a.metaData) schema = JSON.parse(a.metaData.schemaString);
            if (a.protocol) protocol = a.protocol;
            if (a.txn) txn = a.txn;
        }
    }
    return { version, commits, files, schema, txn, protocol };
}
