// Reads [[value, spec], ...] as JSON on stdin and prints what the plugin shows for each.
"use strict";
const { formatValue } = require("../../vault/.obsidian/plugins/fmbuild-evidence/main.js");
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map(([value, spec]) => formatValue(value, spec))));
