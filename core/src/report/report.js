"use strict";
// Builds the report from the JSON in #report-data. Every capture string goes
// through textContent (never innerHTML), so it is shown, never parsed.
(function () {
  var check = document.getElementById("self-check");
  var problems = [];
  function fail(msg) {
    problems.push(msg);
    check.dataset.status = "error";
    check.textContent = "self-check: error: " + problems.join("; ");
  }
  window.addEventListener("error", function (e) { fail("script error: " + e.message); });
  document.addEventListener("securitypolicyviolation", function (e) { fail("blocked " + e.violatedDirective + " " + e.blockedURI); });

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function add(parent, tag, text, cls) { var e = el(tag, text, cls); parent.appendChild(e); return e; }
  function table(parent, id, heads, rows) {
    var t = add(parent, "table"); if (id) t.id = id;
    var tr = add(add(t, "thead"), "tr");
    heads.forEach(function (h) { add(tr, "th", h); });
    var body = add(t, "tbody");
    rows.forEach(function (r) {
      var row = add(body, "tr");
      r.forEach(function (c) {
        var td = add(row, "td", c === null || c === undefined ? "" : c);
        if (typeof c === "number") td.className = "num";
      });
    });
    return t;
  }
  // Recorder options among a capture's metadata keys (ebpf-recorder/src/run.rs).
  var RECORDER_OPTIONS = ["tokenscan.containers_only"];
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function sevClass(s) { return "sev-" + String(s).toLowerCase().replace(/[^a-z]/g, ""); }

  try {
    var data = JSON.parse(document.getElementById("report-data").textContent);
    var s = data.summary;

    var sum = document.getElementById("summary");
    var p = add(sum, "p");
    p.appendChild(el("span", s.events)).id = "count-events";
    p.appendChild(document.createTextNode(" events, "));
    p.appendChild(el("span", s.findings)).id = "count-findings";
    p.appendChild(document.createTextNode(" findings, " + plural(s.containers.length, "container") + ", " +
      plural(s.processes.length, "process").replace("processs", "processes")));
    if (s.time_range) add(sum, "p", "From " + s.time_range.first + " to " + s.time_range.last + " (UTC)");
    var hosts = {};
    s.processes.forEach(function (x) { hosts[x.host] = true; });
    add(sum, "p", "Hosts: " + Object.keys(hosts).sort().join(", ")).id = "hosts";
    table(sum, "captures", ["capture", "events"], s.captures.map(function (c) { return [c.path, c.events]; }));
    data.capture_metadata.forEach(function (m) {
      if (m.lost_events) {
        add(sum, "p", m.capture + ": the recorder lost " + plural(m.lost_events, "event") +
          ": the capture is incomplete, and so is this report.", "warn").className = "warn lost";
      }
      var md = m.metadata, rec = add(sum, "p", null, "recorder");
      if (md["tokenscan.recorder"] || md["tokenscan.recorder_version"]) {
        var opts = Object.keys(md).sort().filter(function (k) { return RECORDER_OPTIONS.indexOf(k) >= 0; })
          .map(function (k) { return k.slice("tokenscan.".length) + "=" + md[k]; });
        rec.textContent = m.capture + ": recorded by " + (md["tokenscan.recorder"] || "?") + " " +
          (md["tokenscan.recorder_version"] || "(version unknown)") +
          (md["tokenscan.hostname"] ? " on " + md["tokenscan.hostname"] : "") +
          (md["tokenscan.kernel_release"] ? " (kernel " + md["tokenscan.kernel_release"] + ")" : "") +
          "; options: " + (opts.length ? opts.join(", ") : "none recorded");
      } else {
        rec.textContent = m.capture + ": no recorder metadata (a converted or imported capture)";
      }
      var keys = Object.keys(m.metadata).sort();
      if (keys.length) {
        add(sum, "h3", "Metadata of " + m.capture);
        table(sum, "", ["key", "value"], keys.map(function (k) { return [k, m.metadata[k]]; }));
      }
    });
    if (s.unreadable) {
      var w = add(sum, "p", "Incomplete: " + plural(s.unreadable.length, "capture") +
        " could not be read completely; what follows covers only the events that were read.", "warn");
      w.id = "incomplete";
      s.unreadable.forEach(function (u) { add(sum, "p", u.capture + ": " + u.message + " (" + u.events_read + " events read)", "warn"); });
    }

    var rules = document.getElementById("rules");
    var rt = table(rules, "rule-table", ["rule", "version", "name", "kind", "severity", "findings", "unevaluable", "source", "SHA-256 of its text"],
      data.rules.map(function (r) { return [r.id, r.version, r.name, r.kind, r.severity, r.findings, r.unevaluable, r.source, r.text_sha256.slice(0, 12)]; }));
    Array.prototype.forEach.call(rt.tBodies[0].rows, function (row, i) {
      var cell = row.cells[8];
      cell.className = "mono sha";
      cell.title = data.rules[i].text_sha256;
      row.cells[4].className = sevClass(data.rules[i].severity);
    });

    var f = document.getElementById("findings");
    if (data.findings.length === 0) add(f, "p", "No findings.");
    else {
      var ft = table(f, "finding-table", ["namespace", "pod", "container", "container id", "rule", "severity", "findings"],
        data.findings.map(function (x) {
          return [x.namespace, x.pod, x.container_name, x.container_id ? x.container_id.slice(0, 12) : "(host)", x.rule_id, x.severity, x.findings];
        }));
      Array.prototype.forEach.call(ft.tBodies[0].rows, function (row) { row.cells[5].className = sevClass(row.cells[5].textContent); });
    }
    if (data.findings_omitted) add(f, "p", data.findings_omitted + " more rows not shown.");

    var tls = document.getElementById("timeline-section");
    var tl = data.timeline;
    var n = tl.rows.length ? tl.rows[0].events.length : 0;
    var zoom = 1;
    var controls = add(tls, "p");
    var wrap = el("div"); wrap.id = "timeline-wrap";
    var box = add(wrap, "div"); box.id = "timeline";
    var minus = add(controls, "button", "\u2212");
    var zl = add(controls, "span", "");
    var plus = add(controls, "button", "+");
    var hint = add(controls, "span", "");
    tls.appendChild(wrap);
    add(tls, "p", "Bar height: events (log scale); red bars hold findings. Hover a bar for its time and counts.", "meta");
    // At zoom z the rows show n / (BASE * z) buckets per bar (at least one): zooming in
    // shows finer buckets, not only wider bars.
    var BASE = Math.min(n, 120) || 1;
    function draw() {
      var per = Math.max(1, Math.floor(n / (BASE * zoom)));
      var bars = Math.ceil(n / per);
      box.style.setProperty("--zoom", zoom);
      zl.textContent = " zoom " + zoom + "x ";
      hint.textContent = " Each bar is " + (tl.bucket_ns * per / 1e9).toPrecision(3) + " s (" + bars + " bars).";
      while (box.firstChild) box.removeChild(box.firstChild);
      var max = 1, rows = tl.rows.map(function (r) {
        var ev = [], fi = [];
        for (var b = 0; b < bars; b++) {
          var e = 0, f = 0;
          for (var i = b * per; i < Math.min(n, (b + 1) * per); i++) { e += r.events[i]; f += r.findings[i]; }
          ev.push(e); fi.push(f); if (e > max) max = e;
        }
        return { r: r, ev: ev, fi: fi };
      });
      rows.forEach(function (x) {
        var row = add(box, "div", null, "tl-row");
        var label = add(row, "div", x.r.label, "tl-label");
        label.title = x.r.container_id || x.r.label;
        var barsEl = add(row, "div", null, "tl-bars");
        x.ev.forEach(function (e, b) {
          var bar = add(barsEl, "div", null, x.fi[b] ? "tl-bar hit" : "tl-bar");
          bar.style.height = (e ? 10 + 90 * Math.log(1 + e) / Math.log(1 + max) : 0) + "%";
          var t0 = new Date((tl.start_ns + b * per * tl.bucket_ns) / 1e6).toISOString();
          bar.title = t0 + ": " + plural(e, "event") + (x.fi[b] ? ", " + plural(x.fi[b], "finding") : "");
        });
      });
    }
    minus.addEventListener("click", function () { zoom = Math.max(1, zoom / 2); draw(); });
    plus.addEventListener("click", function () { zoom = Math.min(16, zoom * 2); draw(); });
    draw();

    var trees = document.getElementById("trees");
    if (data.trees.length === 0) add(trees, "p", "No process has a finding.");
    data.trees.forEach(function (t) {
      var g = add(trees, "section", null, "tree-group");
      if (t.session) g.dataset.session = t.session.pid;
      var h = add(g, "h3", null, "tree-head");
      add(h, "span", t.scope, "scope").title = t.container_id || "host";
      add(h, "span", t.session ? ", session of " + (t.session.name || "?") + " (pid " + t.session.pid + ")" :
        ", session unknown (the capture has no session ids)", "session");
      add(h, "span", ": " + plural(t.findings, "finding") + " in " + t.capture, "meta");
      var ul = add(g, "ul", null, "tree");
      t.nodes.forEach(function (n) {
        var li = add(ul, "li", null, n.findings.length ? "node hit" : "node");
        li.dataset.depth = n.depth;
        li.dataset.pid = n.pid;
        if (n.session_leader) li.dataset.leader = "true";
        li.style.setProperty("--depth", n.depth);
        if (n.depth) li.appendChild(document.createTextNode("\u2514 "));
        var cmd = n.args ? n.args.join(" ") + (n.args_omitted ? " \u2026 (" + n.args_omitted + " more arguments)" : "") : (n.name || "?");
        add(li, "span", cmd, "cmd");
        add(li, "span", "  pid " + n.pid + (n.session_leader ? "  session leader" : "") +
          (n.pod ? "  pod " + n.pod : n.container_id ? "  container " + n.container_id.slice(0, 12) : "  host"), "meta");
        n.findings.forEach(function (x) {
          var d = add(li, "details");
          add(d, "summary", x.rule_id + " #" + x.event_index);
          add(d, "span", x.reason, "reason");
        });
        if (n.findings_omitted) add(li, "div", n.findings_omitted + " more findings on this process", "meta");
      });
    });
    if (data.tree_nodes_omitted) add(trees, "p", data.tree_nodes_omitted + " more processes not shown.");

    var gaps = document.getElementById("gaps");
    if (data.gaps.length === 0) add(gaps, "p", "None: every credential touch was flagged.");
    data.gaps.forEach(function (g) {
      add(gaps, "h3", plural(g.count, "event") + ": " + g.description).dataset.code = g.code;
      table(gaps, "gap-" + g.code, ["capture", "event", "comm", "pid", "container", "touched"],
        g.examples.map(function (x) { return [x.capture, x.event_index, x.comm, x.pid, x.container_id ? x.container_id.slice(0, 12) : "(host)", x.touched]; }));
      if (g.count > g.examples.length) add(gaps, "p", (g.count - g.examples.length) + " more not shown.");
    });

    if (!problems.length) { check.dataset.status = "ok"; check.textContent = "self-check: ok"; }
  } catch (e) {
    fail(String(e && e.stack || e));
  }
})();
