/*
 * fmbuild evidence: the numbers a Field Manual note cites, shown in Obsidian's reading view.
 *
 * A note cites a measured value as {{evidence:metric.path}}, {{evidence:metric:.1%}} or
 * {{evidence:module/metric}}, and a log excerpt as {{log:event}} or {{log:event:N}}. The site and
 * the Editions replace them with the committed record's values; this plugin does the same inside
 * Obsidian, reading evidence/<module>/record/record.json (and record/artifacts/log.jsonl) next to
 * the vault. Plots need no plugin: `![[records/<module>/<plot>.png]]` embeds a file in the vault.
 *
 * Values are inserted as text, never as HTML, and a module name must be a plain folder name, so a
 * note can neither inject markup nor read a file outside the evidence folder. Desktop only: the
 * records live outside the vault, which only Obsidian's desktop file-system adapter can read.
 * Plain CommonJS with no build step; the pure functions below are exported for Node's test runner.
 */
"use strict";

let obsidian = null;
try {
  obsidian = require("obsidian");
} catch (e) {
  obsidian = null; // under Node's test runner: only the pure functions are used
}

const METRIC = /\{\{\s*evidence:([^{}\s:]+)(?::([^{}]*?))?\s*\}\}/g; // as fmbuild's parser reads it
const LOG = /\{\{\s*log:([^{}\n]*?)\s*\}\}/g;
const MODULE_NAME = /^[a-z0-9][a-z0-9_-]*$/;
const LOG_EVENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const MAX_LOG_LINES = 50;

/** Every reference in `text`, in order: {start, end, raw, kind: "metric"|"log", ...}. */
function findRefs(text) {
  const refs = [];
  for (const m of text.matchAll(METRIC)) {
    let target = m[1];
    let module = null;
    const slash = target.indexOf("/");
    if (slash >= 0) {
      module = target.slice(0, slash);
      target = target.slice(slash + 1);
    }
    refs.push({ start: m.index, end: m.index + m[0].length, raw: m[0], kind: "metric", module, metric: target,
                spec: m[2] === undefined ? null : m[2].trim() });
  }
  for (const m of text.matchAll(LOG)) {
    const parts = m[1].split(":");
    const event = parts[0].trim();
    const count = parts.length > 1 && /^\d+$/.test(parts[1].trim()) ? Math.min(Number(parts[1]), MAX_LOG_LINES) : 1;
    refs.push({ start: m.index, end: m.index + m[0].length, raw: m[0], kind: "log", event, count,
                problem: LOG_EVENT.test(event) ? null : "not a log event name" });
  }
  return refs.sort((a, b) => a.start - b.start);
}

/** [found, value] for a dotted path in the record's metrics (nested keys, list indexes). */
function lookup(metrics, dotted) {
  let node = metrics;
  for (const part of dotted.split(".")) {
    if (node !== null && typeof node === "object" && !Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, part)) {
      node = node[part];
    } else if (Array.isArray(node) && /^\d+$/.test(part) && Number(part) < node.length) {
      node = node[Number(part)];
    } else {
      return [false, null];
    }
  }
  return [true, node];
}

// The subset of Python's format mini-language the notes use: [sign][,][.precision][f|%|e|g|d].
const SPEC = /^([-+ ])?(,)?(?:\.(\d{1,2}))?([fF%eEgGd])?$/;

/** The exact decimal digits of |x| (a finite double): {digits, point}, digits without leading
 * zeros and `point` the position of the decimal point in them (negative: that many zeros first). */
function exactDigits(x) {
  const a = Math.abs(x);
  let whole, frac;
  if (a >= 1e21) {
    whole = BigInt(a).toString(); // a double this large is an integer: BigInt gives all its digits
    frac = "";
  } else {
    [whole, frac] = a.toFixed(100).split("."); // toFixed is exact to its 100 decimals
  }
  const all = whole + frac;
  const lead = all.length - all.replace(/^0+/, "").length;
  const digits = all.slice(lead).replace(/0+$/, "");
  return digits ? { digits, point: whole.length - lead } : { digits: "0", point: 1 };
}

/** The first `keep` digits of `digits`, rounded as Python rounds (the exact value, ties to even;
 * JavaScript's toFixed and toExponential break ties upwards: 62.5 gives 63, Python 62). */
function roundDigits(digits, keep) {
  if (keep < 0) return { kept: "", carried: false };
  const padded = digits.padEnd(keep, "0");
  const kept = padded.slice(0, keep).split("").map(Number);
  const rest = digits.slice(keep);
  const last = kept.length ? kept[kept.length - 1] : 0;
  const up = rest[0] > "5" || (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) || last % 2 === 1));
  let carried = false;
  if (up) {
    let i = kept.length - 1;
    while (i >= 0 && kept[i] === 9) kept[i--] = 0;
    if (i < 0) { kept.unshift(1); carried = true; } else kept[i] += 1;
  }
  return { kept: kept.join(""), carried };
}

function signOf(x) {
  return x < 0 || Object.is(x, -0) ? "-" : "";
}

/** x in fixed notation with `precision` decimals, rounded as Python rounds. */
function pyFixed(x, precision) {
  if (!Number.isFinite(x)) return String(x);
  const { digits, point } = exactDigits(x);
  // The digits of |x| from the units place on: pad with zeros before when |x| < 1.
  const aligned = point >= 1 ? digits : "0".repeat(1 - point) + digits;
  const intLen = Math.max(point, 1);
  const { kept } = roundDigits(aligned, intLen + precision);
  const whole = kept.slice(0, kept.length - precision).replace(/^0+(?=\d)/, "") || "0";
  const body = whole + (precision ? "." + kept.slice(kept.length - precision) : "");
  return signOf(x) + body;
}

/** x in scientific notation with `precision` digits after the point: [mantissa, exponent]. */
function pyExponential(x, precision) {
  if (x === 0) return [signOf(x) + (precision ? "0." + "0".repeat(precision) : "0"), 0];
  const { digits, point } = exactDigits(x);
  const { kept, carried } = roundDigits(digits, precision + 1);
  const exponent = point - 1 + (carried ? 1 : 0);
  const m = kept.slice(0, precision + 1);
  return [signOf(x) + m[0] + (precision ? "." + m.slice(1) : ""), exponent];
}

function pyExp(mantissa, exponent, upper) {
  const sign = exponent < 0 ? "-" : "+";
  const digits = String(Math.abs(exponent)).padStart(2, "0");
  return `${mantissa}${upper ? "E" : "e"}${sign}${digits}`;
}

function group(fixed) {
  const [whole, frac] = fixed.split(".");
  const neg = whole.startsWith("-");
  const body = (neg ? whole.slice(1) : whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg ? "-" : "") + body + (frac !== undefined ? "." + frac : "");
}

function formatG(value, precision, upper, strip, bare = false) {
  const p = precision === 0 ? 1 : precision;
  const limit = bare ? p - 1 : p; // with no type, Python switches to scientific notation one digit earlier
  if (value === 0) return strip ? "0" : (0).toFixed(p - 1);
  const [mant, exponent] = pyExponential(value, p - 1);
  let out;
  if (exponent >= -4 && exponent < limit) {
    out = pyFixed(value, Math.max(p - 1 - exponent, 0));
    if (strip && out.includes(".")) out = out.replace(/\.?0+$/, "");
    return out;
  }
  let m = mant;
  if (strip && m.includes(".")) m = m.replace(/\.?0+$/, "");
  return pyExp(m, exponent, upper);
}

/** A recorded value as fmbuild prints it: the spec when it is one this plugin knows, else compact. */
function formatValue(value, spec) {
  const wasBool = typeof value === "boolean";
  if (wasBool && spec) value = Number(value); // Python formats a bool as the int it is
  if (typeof value === "number" && Number.isFinite(value) && spec) {
    const m = SPEC.exec(spec);
    if (m) {
      const [, sign, comma, prec, type] = m;
      const precision = prec === undefined ? 6 : Number(prec);
      let out = null;
      if (type === "d") {
        out = Number.isInteger(value) ? String(value) : null;
      } else if (type === "f" || type === "F") {
        out = pyFixed(value, precision);
      } else if (type === "%") {
        out = pyFixed(value * 100, precision) + "%";
      } else if (type === "e" || type === "E") {
        const [mant, exp] = pyExponential(value, precision);
        out = pyExp(mant, exp, type === "E");
      } else if (type === "g" || type === "G") {
        out = formatG(value, precision, type === "G", true);
      } else if (type === undefined && prec !== undefined && !wasBool) {
        // Python's "general" format without a type keeps one digit after the point in fixed notation.
        out = formatG(value, precision, false, true, true);
        if (!/[.e]/.test(out) && !/inf|nan/.test(out)) out += ".0";
      }
      if (out !== null) {
        if (comma) {
          const pct = out.endsWith("%");
          out = group(pct ? out.slice(0, -1) : out) + (pct ? "%" : "");
        }
        if (!out.startsWith("-") && (sign === "+" || sign === " ")) out = sign + out;
        return out;
      }
    }
  }
  if (wasBool) return value ? "true" : "false";
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    if (!Number.isFinite(value)) return Number.isNaN(value) ? "nan" : (value > 0 ? "inf" : "-inf");
    return formatG(value, 4, false, true);
  }
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** The module a note's own references read: its frontmatter's evidence.module, as a folder name. */
function noteModule(frontmatter) {
  const ev = frontmatter && frontmatter.evidence;
  const module = ev && typeof ev === "object" ? ev.module : null;
  if (typeof module !== "string") return null;
  const parts = module.split("/").filter((part) => part !== "");
  if (!parts.length || parts.some((part) => part === ".." || part === ".")) return null; // a path, not a module
  const name = parts[parts.length - 1];
  return MODULE_NAME.test(name) ? name : null;
}

/** What one reference shows: {text, title, ok, lines?}. `records(name)` gives a loaded record or null. */
function resolveRef(ref, ownModule, records) {
  const name = ref.kind === "metric" && ref.module ? ref.module : ownModule;
  if (!name || !MODULE_NAME.test(name)) {
    return { ok: false, text: "not measured", title: `${ref.raw}: no evidence module` };
  }
  const record = records(name);
  if (!record) {
    return { ok: false, text: "not measured", title: `${ref.raw}: ${name} has no committed record` };
  }
  const source = `${name}, recorded ${record.date || "(no date)"}, ${record.status || "(no status)"}`;
  if (ref.kind === "log") {
    if (ref.problem) return { ok: false, text: "log excerpt not recorded", title: `${ref.raw}: ${ref.problem}` };
    const lines = (record.events && record.events[ref.event] || []).slice(0, ref.count);
    if (!lines.length) return { ok: false, text: "log excerpt not recorded", title: `${ref.raw}: the record has no ${ref.event} line` };
    return { ok: true, lines, text: lines.join("\n"), title: source };
  }
  const [found, value] = lookup(record.metrics || {}, ref.metric);
  if (!found) return { ok: false, text: "not measured", title: `${ref.raw}: the run did not produce ${ref.metric}` };
  return { ok: true, text: formatValue(value, ref.spec), title: `${ref.metric} from ${source}` };
}

/** A record as the plugin keeps it: metrics, date, status and the log lines by event. */
function parseRecord(recordText, logText) {
  const data = JSON.parse(recordText);
  const events = {};
  for (const line of (logText || "").split("\n")) {
    if (!line.trim()) continue;
    try {
      const event = JSON.parse(line).event;
      if (typeof event === "string") (events[event] = events[event] || []).push(line);
    } catch (e) {
      // a line that is not JSON is not an event
    }
  }
  const metrics = data && typeof data.metrics === "object" && data.metrics !== null ? data.metrics : {};
  return { metrics, date: data.date, status: data.status, events };
}

const DEFAULT_SETTINGS = { evidenceFolder: "../evidence" }; // relative to the vault folder

if (obsidian) {
  const fs = require("fs");
  const path = require("path");

  class FmbuildEvidencePlugin extends obsidian.Plugin {
    async onload() {
      this.settings = Object.assign({}, DEFAULT_SETTINGS, await this.loadData());
      this.records = new Map();
      this.registerMarkdownPostProcessor((el, ctx) => this.render(el, ctx));
      this.addCommand({ id: "reload-records", name: "Reload evidence records",
                        callback: () => { this.records.clear(); new obsidian.Notice("fmbuild: records will be read again"); } });
    }

    evidenceRoot() {
      const adapter = this.app.vault.adapter;
      if (!(adapter instanceof obsidian.FileSystemAdapter)) return null;
      return path.resolve(adapter.getBasePath(), this.settings.evidenceFolder);
    }

    record(name) {
      if (this.records.has(name)) return this.records.get(name);
      let loaded = null;
      const root = this.evidenceRoot();
      if (root && MODULE_NAME.test(name)) {
        const folder = path.join(root, name, "record");
        try {
          const log = fs.existsSync(path.join(folder, "artifacts", "log.jsonl"))
            ? fs.readFileSync(path.join(folder, "artifacts", "log.jsonl"), "utf8") : "";
          loaded = parseRecord(fs.readFileSync(path.join(folder, "record.json"), "utf8"), log);
        } catch (e) {
          loaded = null; // no record, or one that is not JSON: shown as not measured
        }
      }
      this.records.set(name, loaded);
      return loaded;
    }

    render(el, ctx) {
      const frontmatter = ctx.frontmatter || (this.app.metadataCache.getCache(ctx.sourcePath) || {}).frontmatter;
      const own = noteModule(frontmatter);
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      const nodes = [];
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (!n.parentElement.closest("code, pre") && n.nodeValue.includes("{{")) nodes.push(n);
      }
      for (const node of nodes) {
        const text = node.nodeValue;
        const refs = findRefs(text);
        if (!refs.length) continue;
        const frag = document.createDocumentFragment();
        let at = 0;
        for (const ref of refs) {
          if (ref.start < at) continue;
          frag.appendChild(document.createTextNode(text.slice(at, ref.start)));
          const shown = resolveRef(ref, own, (name) => this.record(name));
          const span = document.createElement(shown.lines ? "pre" : "span");
          span.className = shown.ok ? "fm-metric" : "fm-metric fm-not-measured";
          span.textContent = shown.text; // text, never HTML
          span.setAttribute("title", shown.title);
          frag.appendChild(span);
          at = ref.end;
        }
        frag.appendChild(document.createTextNode(text.slice(at)));
        node.parentNode.replaceChild(frag, node);
      }
    }
  }

  module.exports = FmbuildEvidencePlugin;
} else {
  module.exports = { findRefs, lookup, formatValue, noteModule, resolveRef, parseRecord, DEFAULT_SETTINGS };
}
