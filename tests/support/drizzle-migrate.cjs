// Apply a Drizzle migration folder with drizzle-orm's own migrate() (node-postgres driver): the
// ground truth pgship is compared with (tests/drizzle_compat.rs, scripts/bench-migrate).
//
// Usage: node drizzle-migrate.cjs <migrations folder> [table] [schema]
//   DRIZZLE_MIGRATE_URL   the database (postgres:// URL); required
//   PGSHIP_NPM_DEPS       the folder whose node_modules holds drizzle-orm and pg
//                         (scripts/npm-test-deps --print-dir)
// table and schema default to drizzle's own defaults (__drizzle_migrations, drizzle), as in
// drizzle.config.ts's `migrations: { table, schema }`.
// Exit 0 on success; 1 with drizzle's error and its cause on stderr; 2 on a usage error.
"use strict";
const path = require("path");
const { createRequire } = require("module");

function usage(msg) {
  process.stderr.write(`drizzle-migrate: ${msg}\n`);
  process.exit(2);
}

const [folder, table, schema] = process.argv.slice(2);
const url = process.env.DRIZZLE_MIGRATE_URL;
const deps = process.env.PGSHIP_NPM_DEPS;
if (!folder) usage("missing the migrations folder argument");
if (!url) usage("DRIZZLE_MIGRATE_URL is not set");
if (!deps) usage("PGSHIP_NPM_DEPS is not set (scripts/npm-test-deps --print-dir)");

// Resolve the packages from the pinned install, not from wherever this file lives.
const load = createRequire(path.join(path.resolve(deps), "package.json"));
const { Pool } = load("pg");
const { drizzle } = load("drizzle-orm/node-postgres");
const { migrate } = load("drizzle-orm/node-postgres/migrator");

async function main() {
  // One connection, as `drizzle-kit migrate` uses (max: 1).
  const pool = new Pool({ connectionString: url, max: 1 });
  try {
    const config = { migrationsFolder: path.resolve(folder) };
    if (table) config.migrationsTable = table;
    if (schema) config.migrationsSchema = schema;
    await migrate(drizzle(pool), config);
  } finally {
    await pool.end();
  }
}

main().catch((e) => {
  const cause = e && e.cause ? `\ncause: ${e.cause.message || e.cause}` : "";
  process.stderr.write(`drizzle-migrate: ${e && e.message ? e.message : e}${cause}\n`);
  process.exit(1);
});
