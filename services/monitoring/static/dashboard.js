// Operators' dashboard: fetches monitoring's JSON endpoints and draws them (SVG, no libraries).
(function () {
  "use strict";
  var KEY = "jiuzhu.monitoring.token";
  var $ = function (id) { return document.getElementById(id); };
  var SVGNS = "http://www.w3.org/2000/svg";
  var CATEGORY_LABELS = {
    dibao: "低保", tekun: "特困", marginal: "低保边缘", unstable_post_poverty: "脱贫不稳定",
    at_risk_of_poverty: "边缘易致贫", sudden_hardship: "突发严重困难", other_low_income: "其他低收入"
  };
  var BUCKETS = [["overdue", "逾期 overdue", "#c0392b"], ["due_today", "今日到期 today", "#e67e22"],
                 ["due_3_days", "3日内 ≤3 days", "#f1c40f"], ["later", "其后 later", "#7fa7d6"]];

  function setText(id, value) { var el = $(id); if (el) { el.textContent = value === null || value === undefined ? "–" : String(value); } }
  function pct(share) { return share === null || share === undefined ? "–" : (Number(share) * 100).toFixed(1) + "%"; }
  function status(msg, isError) { var el = $("status"); el.textContent = msg; el.className = isError ? "error" : ""; }

  function takeToken() {
    var params = new URLSearchParams(window.location.search);
    var t = params.get("token");
    if (t) {
      sessionStorage.setItem(KEY, t);
      params.delete("token");
      var rest = params.toString();
      // keep the token out of the address bar and history
      history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
    }
    return sessionStorage.getItem(KEY);
  }

  function claims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) { part += "="; }
      return JSON.parse(decodeURIComponent(escape(atob(part))));
    } catch (e) { return {}; }
  }

  function currentMonth() {
    var d = new Date(Date.now() + 8 * 3600 * 1000); // Asia/Shanghai
    return d.getUTCFullYear() + "-" + String(d.getUTCMonth() + 1).padStart(2, "0");
  }

  function api(path, token) {
    return fetch(path, { headers: { "Authorization": "Bearer " + token, "Accept": "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error(path.split("?")[0] + ": " + r.status + " " + (body.detail || body.title || "")); }
          return body;
        });
      });
  }

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function stackedBars(container, summary) {
    var w = 320, h = 170, left = 52, top = 10, barH = 30, gap = 16;
    var svg = el("svg", { width: "100%", viewBox: "0 0 " + w + " " + h, role: "img", "aria-label": "warnings by level and deadline" });
    var levels = ["1", "2", "3"];
    var max = 1;
    levels.forEach(function (l) {
      var s = 0; BUCKETS.forEach(function (b) { s += summary.by_level[l][b[0]]; }); max = Math.max(max, s);
    });
    levels.forEach(function (l, i) {
      var y = top + i * (barH + gap), x = left, total = 0;
      svg.appendChild(el("text", { x: 4, y: y + barH / 2 + 4 }, "一二三".charAt(i) + "级 L" + l));
      BUCKETS.forEach(function (b) {
        var n = summary.by_level[l][b[0]];
        if (!n) { return; }
        var bw = (w - left - 40) * n / max;
        var r = el("rect", { x: x, y: y, width: bw, height: barH, fill: b[2], "data-level": l, "data-bucket": b[0] });
        r.appendChild(el("title", {}, b[1] + ": " + n));
        svg.appendChild(r);
        if (bw > 14) { svg.appendChild(el("text", { x: x + bw / 2 - 4, y: y + barH / 2 + 4 }, String(n))); }
        x += bw; total += n;
      });
      svg.appendChild(el("text", { x: x + 4, y: y + barH / 2 + 4, "class": "level-total", "data-level": l }, String(total)));
    });
    var lx = 4;
    BUCKETS.forEach(function (b) {
      svg.appendChild(el("rect", { x: lx, y: h - 14, width: 10, height: 10, fill: b[2] }));
      svg.appendChild(el("text", { x: lx + 13, y: h - 5 }, b[1].split(" ")[0]));
      lx += 74;
    });
    container.replaceChildren(svg);
  }

  function registerBars(container, counts) {
    var keys = Object.keys(CATEGORY_LABELS);
    var w = 320, rowH = 22, left = 92, h = keys.length * rowH + 8;
    var max = 1;
    keys.forEach(function (k) { max = Math.max(max, counts[k] || 0); });
    var svg = el("svg", { width: "100%", viewBox: "0 0 " + w + " " + h, role: "img", "aria-label": "register by category" });
    keys.forEach(function (k, i) {
      var n = counts[k] || 0, y = 4 + i * rowH, bw = (w - left - 50) * n / max;
      svg.appendChild(el("text", { x: 2, y: y + 14 }, CATEGORY_LABELS[k]));
      svg.appendChild(el("rect", { x: left, y: y + 3, width: Math.max(bw, 1), height: rowH - 8, fill: "#2f6db5" }));
      svg.appendChild(el("text", { x: left + bw + 4, y: y + 14, "data-category": k }, String(n)));
    });
    container.replaceChildren(svg);
  }

  function rows(tbody, items, cells) {
    var frag = document.createDocumentFragment();
    items.forEach(function (it) {
      var tr = document.createElement("tr");
      cells(it).forEach(function (c) { var td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
      frag.appendChild(tr);
    });
    if (!items.length) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = 6; td.className = "muted"; td.textContent = "无 none"; tr.appendChild(td); frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }

  function render(ind, summary, list, funds, health) {
    $("period-label").textContent = ind.period + " (" + ind.from + " – " + ind.to + ")";
    var ad = ind.active_discovery;
    setText("kpi-i5", pct(ad.share));
    setText("kpi-i5-target", pct(ad.target));
    setText("kpi-i5-count", ad.active_discovery + " / " + ad.total_new_cases);
    $("kpi-i5").className = "v " + (ad.meets_target ? "good" : "bad");
    var p3 = ind.paid_within_limit;
    setText("kpi-p3", pct(p3.share));
    setText("kpi-p3-count", p3.within_limit + " / " + p3.paid);
    var t3 = ind.tekun_visits;
    setText("kpi-t3", pct(t3.share));
    setText("kpi-t3-count", t3.visited + " / " + t3.dispersed + " (" + t3.month + ")");
    var i4 = ind.zero_reports;
    setText("kpi-i4", pct(i4.share));
    setText("kpi-i4-count", i4.filed + " / " + i4.expected);
    setText("kpi-m4", ind.coverage_gaps.found);
    setText("kpi-m4-included", ind.coverage_gaps.included);
    setText("kpi-m6", ind.deaths.detected);
    setText("kpi-m6-rec", ind.deaths.recoveries_flagged + " · ¥" + ind.deaths.recovery_amount);

    setText("warnings-open", summary.open);
    setText("warnings-overdue", summary.overdue);
    setText("warnings-escalated", summary.escalated_open);
    setText("deadline-days", Object.keys(summary.deadline_working_days).map(function (l) {
      return "L" + l + " " + summary.deadline_working_days[l] + "d"; }).join(", "));
    stackedBars($("chart-warnings"), summary);
    var total = 0; Object.keys(ind.register).forEach(function (k) { total += ind.register[k]; });
    setText("register-total", total);
    registerBars($("chart-register"), ind.register);
    var open = list.items.slice().sort(function (a, b) { return a.due_on < b.due_on ? -1 : a.due_on > b.due_on ? 1 : a.level - b.level; });
    rows($("warnings-table"), open.slice(0, 15), function (w) {
      return ["#" + w.warning_id, w.rule, w.label, String(w.level), w.region_code, w.due_on + (w.overdue ? " ⚠" : "")];
    });

    setText("funds-idle", funds.totals.idle_funds);
    setText("funds-booked", funds.totals.allocation_booked_as_spent);
    rows($("funds-table"), funds.alerts, function (a) {
      return [a.township_code, a.kind === "idle_funds" ? "趴窝 idle" : "以拨代支 booked", a.amount, a.since];
    });

    setText("health-lag", health.consumer_lag_total);
    setText("health-dead", health.dead_letters_unresolved);
    setText("health-outbox", health.outbox_backlog);
    setText("health-processed", health.events_processed_last_hour);
    rows($("dead-table"), health.dead_letters_recent, function (d) { return [d.consumer, d.topic, d.error]; });
  }

  function load() {
    var token = sessionStorage.getItem(KEY);
    if (!token) { $("login").style.display = "block"; $("board").hidden = true; status("需要令牌 token needed", true); return; }
    var region = $("region").value.trim(), period = $("period").value.trim() || currentMonth();
    $("period").value = period;
    var q = "region_code=" + encodeURIComponent(region);
    status("加载中 loading " + region + " " + period + "…", false);
    Promise.all([
      api("/v1/indicators?" + q + "&period=" + encodeURIComponent(period), token),
      api("/v1/warnings/summary?" + q, token),
      api("/v1/warnings?" + q + "&status=open&limit=200", token),
      api("/v1/funds/alerts?" + q, token),
      api("/v1/ops/health", token)
    ]).then(function (r) {
      render(r[0], r[1], r[2], r[3], r[4]);
      $("board").hidden = false;
      $("login").style.display = "none";
      document.body.setAttribute("data-loaded", "true");
      status("已更新 updated " + new Date().toLocaleString() + " · " + region + " · " + period, false);
    }).catch(function (e) {
      status("加载失败 could not load: " + e.message, true);
      document.body.setAttribute("data-loaded", "error");
    });
  }

  function init() {
    var token = takeToken();
    var params = new URLSearchParams(window.location.search);
    var c = token ? claims(token) : {};
    $("region").value = params.get("region") || c.region || "";
    $("period").value = params.get("period") || currentMonth();
    $("reload").addEventListener("click", load);
    $("logout").addEventListener("click", function () { sessionStorage.removeItem(KEY); load(); });
    $("token-save").addEventListener("click", function () {
      var t = $("token-input").value.trim();
      if (t) { sessionStorage.setItem(KEY, t); $("token-input").value = ""; if (!$("region").value) { $("region").value = claims(t).region || ""; } load(); }
    });
    load();
    setInterval(function () { if (!document.hidden && sessionStorage.getItem(KEY)) { load(); } }, 60000);
  }

  init();
})();
