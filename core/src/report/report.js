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
    table(rules, "rule-table", ["rule", "name", "kind", "severity", "findings", "unevaluable", "source"],
      data.rules.map(function (r) { return [r.id, r.name, r.kind, r.severity, r.findings, r.unevaluable, r.source]; }));

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
    var zoom = 1;
    var controls = add(tls, "p");
    var wrap = el("div"); wrap.id = "timeline-wrap";
    var box = add(wrap, "div"); box.id = "timeline";
    function setZoom(z) { zoom = Math.max(1, Math.min(16, z)); box.style.setProperty("--zoom", zoom); zl.textContent = " zoom " + zoom + "x "; }
    add(controls, "button", "−").addEventListener("click", function () { setZoom(zoom / 2); });
    var zl = add(controls, "span", " zoom 1x ");
    add(controls, "button", "+").addEventListener("click", function () { setZoom(zoom * 2); });
    controls.appendChild(document.createTextNode(" Each bar is " + (tl.bucket_ns / 1e9).toPrecision(3) +
      " s of events (height: events, log scale); red bars hold findings."));
    tls.appendChild(wrap);
    var max = 1;
    tl.rows.forEach(function (r) { r.events.forEach(function (n) { if (n > max) max = n; }); });
    tl.rows.forEach(function (r) {
      var row = add(box, "div", null, "tl-row");
      var label = add(row, "div", r.label, "tl-label");
      label.title = r.container_id || r.label;
      var bars = add(row, "div", null, "tl-bars");
      r.events.forEach(function (n, i) {
        var b = add(bars, "div", null, r.findings[i] ? "tl-bar hit" : "tl-bar");
        b.style.height = (n ? 10 + 90 * Math.log(1 + n) / Math.log(1 + max) : 0) + "%";
        var t0 = new Date((tl.start_ns + i * tl.bucket_ns) / 1e6).toISOString();
        b.title = t0 + ": " + plural(n, "event") + (r.findings[i] ? ", " + plural(r.findings[i], "finding") : "");
      });
    });

    var trees = document.getElementById("trees");
    if (data.trees.length === 0) add(trees, "p", "No process has a finding.");
    data.trees.forEach(function (t) {
      add(trees, "h3", t.capture);
      var ul = add(trees, "ul", null, "tree");
      t.nodes.forEach(function (n) {
        var li = add(ul, "li", null, n.findings.length ? "node hit" : "node");
        li.dataset.depth = n.depth;
        li.dataset.pid = n.pid;
        li.style.setProperty("--depth", n.depth);
        if (n.depth) li.appendChild(document.createTextNode("└ "));
        var cmd = n.args ? n.args.join(" ") + (n.args_omitted ? " … (" + n.args_omitted + " more arguments)" : "") : (n.name || "?");
        add(li, "span", cmd, "cmd");
        add(li, "span", "  pid " + n.pid + (n.pod ? "  pod " + n.pod : n.container_id ? "  container " + n.container_id.slice(0, 12) : "  host"), "meta");
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
