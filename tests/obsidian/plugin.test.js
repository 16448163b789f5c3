// The Obsidian plugin's logic under Node's own test runner: node --test tests/obsidian/
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const plugin = require("../../vault/.obsidian/plugins/fmbuild-evidence/main.js");

const record = plugin.parseRecord(
  JSON.stringify({ date: "2026-12-03T10:00:00Z", status: "passed",
                   metrics: { accuracy: { spread: 0.0129 }, twins: 5, runs: [0.5, 0.25], flag: true } }),
  '{"event": "attack.transfer", "eps": 0.1}\nnot json\n{"event": "attack.transfer", "eps": 0.2}\n{"event": "other"}\n');
const records = (name) => (name === "twins" ? record : null);

test("references are found as fmbuild's parser reads them", () => {
  const refs = plugin.findRefs("a {{evidence:accuracy.spread:.1%}} b {{ evidence:other-mod/x }} {{log:attack.transfer:2}}");
  assert.deepEqual(refs.map((r) => [r.kind, r.module, r.metric, r.spec, r.event, r.count]), [
    ["metric", null, "accuracy.spread", ".1%", undefined, undefined],
    ["metric", "other-mod", "x", null, undefined, undefined],
    ["log", undefined, undefined, undefined, "attack.transfer", 2],
  ]);
});

test("a metric resolves from the note's own module, another module's, or says why not", () => {
  const [spread] = plugin.findRefs("{{evidence:accuracy.spread:.1%}}");
  assert.deepEqual(plugin.resolveRef(spread, "twins", records),
                   { ok: true, text: "1.3%", title: "accuracy.spread from twins, recorded 2026-12-03T10:00:00Z, passed" });
  const [listed] = plugin.findRefs("{{evidence:twins/runs.1}}");
  assert.equal(plugin.resolveRef(listed, null, records).text, "0.25");
  const [missing] = plugin.findRefs("{{evidence:accuracy.mean}}");
  assert.deepEqual(plugin.resolveRef(missing, "twins", records),
                   { ok: false, text: "not measured", title: "{{evidence:accuracy.mean}}: the run did not produce accuracy.mean" });
  const [foreign] = plugin.findRefs("{{evidence:absent/x}}");
  assert.equal(plugin.resolveRef(foreign, "twins", records).title, "{{evidence:absent/x}}: absent has no committed record");
});

test("a module name that is a path is refused, so no file outside the evidence folder is read", () => {
  const asked = [];
  const spy = (name) => { asked.push(name); return null; };
  const [escape] = plugin.findRefs("{{evidence:../../etc/passwd}}");
  assert.equal(plugin.resolveRef(escape, null, spy).title, "{{evidence:../../etc/passwd}}: no evidence module");
  assert.equal(plugin.noteModule({ evidence: { module: "evidence/../../secret" } }), null);
  assert.equal(plugin.noteModule({ evidence: { module: "evidence/training-run-variance" } }), "training-run-variance");
  assert.equal(plugin.noteModule({ title: "no evidence" }), null);
  assert.deepEqual(asked, []);
});

test("log excerpts are the first N lines of the event, bounded", () => {
  const [log] = plugin.findRefs("{{log:attack.transfer:5}}");
  const shown = plugin.resolveRef(log, "twins", records);
  assert.equal(shown.lines.length, 2);
  assert.match(shown.lines[1], /"eps": 0.2/);
  const [bad] = plugin.findRefs("{{log:<script>}}");
  assert.equal(plugin.resolveRef(bad, "twins", records).title, "{{log:<script>}}: not a log event name");
  const [huge] = plugin.findRefs("{{log:attack.transfer:100000}}");
  assert.equal(huge.count, 50);
});

test("a record that is not JSON is an error for the caller, which shows it as not measured", () => {
  assert.throws(() => plugin.parseRecord("{not json", ""));
  assert.deepEqual(plugin.parseRecord('{"metrics": null}', "").metrics, {});
});
