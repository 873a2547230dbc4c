// System page (#/system): readiness, workers per stage, queue depths, and the vigil_* lines
// of /metrics in a filterable table. Refreshed every 3 s while on screen.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api } = V;
  const REFRESH_MS = 3000;
  const QUEUE_ORDER = ['length', 'pending', 'consumers', 'caught_up', 'last_delivered'];
  const WORKER_ORDER = ['worker', 'pid', 'host', 'since'];

  let metricsFilter = '';  // kept while the user moves between pages
  const HISTORY = 120;     // chart points kept (6 minutes at one per 3 s)
  const history = [];      // samples survive leaving the page and coming back
  const SVGNS = 'http://www.w3.org/2000/svg';

  const sumOf = (rows, name, pred) => rows.filter((r) => r.name === name && (!pred || pred(r.labels)))
    .reduce((a, r) => a + (Number.isFinite(r.value) ? r.value : 0), 0);

  // Cumulative histogram buckets {le: count} summed over label sets.
  function buckets(rows, name) {
    const out = {};
    for (const r of rows) if (r.name === name + '_bucket') out[r.labels.le] = (out[r.labels.le] || 0) + r.value;
    return out;
  }
  function quantile(prev, cur, q) {
    const les = Object.keys(cur).filter((k) => k !== '+Inf').map(Number).sort((a, b) => a - b);
    const d = (le) => (cur[String(le)] || 0) - ((prev || {})[String(le)] || 0);
    const total = (cur['+Inf'] || 0) - ((prev || {})['+Inf'] || 0);
    if (!(total > 0)) return null;
    for (const le of les) if (d(le) >= q * total) return le;
    return les.length ? les[les.length - 1] : null;
  }

  // One chart sample from a /metrics scrape: rates from the change since the previous one.
  function sample(rows, t) {
    const s = {
      t, packets: sumOf(rows, 'vigil_scheduler_packets_total'), events: sumOf(rows, 'vigil_analyzer_events_total'),
      alerts: sumOf(rows, 'vigil_alerts_changes_total'), hooks: sumOf(rows, 'vigil_webhook_deliveries_total'),
      queue: sumOf(rows, 'vigil_analyzer_group_lag_packets') + sumOf(rows, 'vigil_queue_pending_entries', (l) => l.queue === 'packets'),
      lat: buckets(rows, 'vigil_analyzer_latency_seconds'),
    };
    const p = history[history.length - 1];
    const dt = p ? t - p.t : 0;
    const rate = (k) => (p && dt > 0 ? Math.max(0, (s[k] - p[k]) / dt) : null);
    s.packetRate = rate('packets') === null ? null : rate('packets') * 60;
    s.eventRate = rate('events') === null ? null : rate('events') * 60;
    s.alertRate = rate('alerts') === null ? null : rate('alerts') * 60;
    s.hookRate = rate('hooks') === null ? null : rate('hooks') * 60;
    s.p50 = p ? quantile(p.lat, s.lat, 0.5) : null;
    s.p95 = p ? quantile(p.lat, s.lat, 0.95) : null;
    history.push(s);
    while (history.length > HISTORY) history.shift();
  }

  const CHARTS = [
    ['chart-packets', 'Packets / min', [['packetRate', 'packets']]],
    ['chart-queue', 'Analyzer queue (packets)', [['queue', 'waiting']]],
    ['chart-latency', 'Analyzer latency (s, ≤ bucket)', [['p50', 'p50'], ['p95', 'p95']]],
    ['chart-events', 'Events / min', [['eventRate', 'events']]],
    ['chart-alerts', 'Alert changes / min', [['alertRate', 'alerts'], ['hookRate', 'webhooks']]],
  ];

  function chart(id, title, series) {
    const card = el('figure', 'chart');
    card.id = id;
    const last = el('span', 'chart-value');
    const cap = el('figcaption', null, title + ' ');
    cap.append(last);
    const box = document.createElementNS(SVGNS, 'svg');
    box.setAttribute('viewBox', '0 0 100 40');
    box.setAttribute('preserveAspectRatio', 'none');
    box.setAttribute('class', 'chart-svg');
    const pts = history.map((h) => series.map(([k]) => h[k]));
    const max = Math.max(1e-9, ...pts.flat().filter((v) => v !== null && Number.isFinite(v)));
    series.forEach(([k], i) => {
      const coords = [];
      history.forEach((h, j) => {
        const v = h[k];
        if (v === null || !Number.isFinite(v)) return;
        coords.push((history.length > 1 ? (j / (HISTORY - 1)) * 100 : 0).toFixed(2) + ',' + (38 - (v / max) * 34).toFixed(2));
      });
      const line = document.createElementNS(SVGNS, 'polyline');
      line.setAttribute('points', coords.join(' '));
      line.setAttribute('class', 'chart-line chart-line-' + i);
      box.append(line);
    });
    const h = history[history.length - 1];
    last.textContent = h ? series.map(([k, label]) => label + ' ' + (h[k] === null || !Number.isFinite(h[k]) ? '—' : V.fmtNum(h[k]))).join(' · ') : '';
    card.append(cap, box);
    return card;
  }

  // Prometheus text format -> [{name, labels: {k: v}, value, raw}] (vigil_* only) and HELP texts.
  function parseMetrics(text) {
    const out = [];
    const help = {};
    for (const line of str(text).split('\n')) {
      if (line.startsWith('# HELP ')) {
        const m = /^# HELP (\S+) (.*)$/.exec(line);
        if (m) help[m[1]] = m[2].replace(/\\n/g, ' ').replace(/\\\\/g, '\\');
        continue;
      }
      if (!line.trim() || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$/.exec(line);
      if (!m || !m[1].startsWith('vigil_')) continue;
      const labels = {};
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[2] || '')) !== null) {
        labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
      out.push({ name: m[1], labels, value: Number(m[3]), raw: m[3] });
    }
    return { rows: out, help };
  }
  V.parseMetrics = parseMetrics;

  function mount(root, _param, ctx) {
    const st = { metrics: { rows: [], help: {} } };

    const head = el('div', 'page-head');
    const ready = el('span', 'badge', '…');
    ready.id = 'system-ready';
    const updated = el('span', 'note');
    head.append(el('h1', null, 'System'), ready, el('span', 'spacer'), updated);
    root.append(head);

    const chartsPanel = V.panel('Charts', 'system-charts');
    chartsPanel.node.id = 'system-charts';
    chartsPanel.note.textContent = 'from /metrics every 3 s while this page is open';
    root.append(chartsPanel.node);
    function renderCharts() {
      const grid = el('div', 'chart-grid');
      for (const [id, title, series] of CHARTS) grid.append(chart(id, title, series));
      chartsPanel.body.replaceChildren(grid);
    }

    const top = el('div', 'system-grid');
    const readyPanel = V.panel('Stages', 'system-stages');
    readyPanel.node.id = 'system-stage-counts';
    const queuePanel = V.panel('Queues', 'system-queues');
    queuePanel.node.id = 'system-queues';
    top.append(readyPanel.node, queuePanel.node);
    root.append(top);

    const analyzersPanel = V.panel('Analyzers', 'system-analyzers');
    analyzersPanel.node.id = 'system-analyzers';
    root.append(analyzersPanel.node);

    const workersPanel = V.panel('Workers', 'system-workers');
    workersPanel.node.id = 'system-workers';
    root.append(workersPanel.node);

    const metricsPanel = V.panel('Metrics', 'system-metrics');
    const filterIn = V.input('filter', 'search', metricsFilter, { placeholder: 'filter, e.g. camera lot  or  queue', spellcheck: 'false' });
    filterIn.id = 'metrics-filter';
    filterIn.setAttribute('aria-label', 'Filter metrics');
    const metricsBox = el('div', 'metrics-box');
    metricsPanel.body.append(filterIn, metricsBox);
    root.append(metricsPanel.node);
    filterIn.addEventListener('input', () => { metricsFilter = filterIn.value; renderMetrics(); });

    // ---- readiness and stage counts ------------------------------------------------

    function renderReady(rz, sys) {
      const r = obj(rz);
      const isReady = r.ready === true;
      ready.className = 'badge ' + (rz === null ? '' : isReady ? 'yes' : 'no');
      ready.textContent = rz === null ? 'readiness unknown' : isReady ? 'ready' : 'not ready';
      const stagesFromReady = obj(r.stages);
      const workers = obj(obj(sys).stages);
      const names = [...new Set([...Object.keys(stagesFromReady), ...Object.keys(workers)])];
      const body = readyPanel.body;
      body.replaceChildren();
      const redis = el('div', 'stat-row');
      redis.append(el('span', 'stat-name', 'redis'),
        el('span', 'badge ' + (r.redis === true ? 'yes' : r.redis === false ? 'no' : ''), r.redis === true ? 'ok' : r.redis === false ? 'unreachable' : '—'));
      body.append(redis);
      const cards = el('div', 'stat-cards');
      for (const s of names) {
        const n = num(stagesFromReady[s]) !== null ? stagesFromReady[s] : arr(workers[s]).length;
        const c = el('div', 'stat-card ' + (n > 0 ? 'ok' : 'bad'));
        c.dataset.stage = s;
        c.append(el('div', 'stat-value', String(n)), el('div', 'stat-label', s + (n === 1 ? ' worker' : ' workers')));
        cards.append(c);
      }
      if (!names.length) cards.append(el('p', 'muted', 'No stage has reported yet.'));
      body.append(cards);
    }

    function renderQueues(sys) {
      const queues = obj(obj(sys).queues);
      const body = queuePanel.body;
      body.replaceChildren();
      const names = Object.keys(queues);
      if (!names.length) { body.append(el('p', 'muted', 'No queue information.')); return; }
      const cards = el('div', 'queue-cards');
      for (const name of names) {
        const q = obj(queues[name]);
        const card = el('div', 'queue-card');
        card.dataset.queue = name;
        const h = el('div', 'queue-head');
        h.append(el('span', 'queue-name', name));
        if (typeof q.caught_up === 'boolean') h.append(el('span', 'badge ' + (q.caught_up ? 'yes' : 'warn'), q.caught_up ? 'caught up' : 'behind'));
        card.append(h);
        const big = el('div', 'queue-nums');
        const pending = num(q.pending), length = num(q.length);
        big.append(statNum(pending, 'pending', pending !== null && pending > 0 ? 'warn' : ''), statNum(length, 'length', ''),
          statNum(num(q.consumers), 'consumers', num(q.consumers) === 0 ? 'bad' : ''));
        card.append(big);
        const rest = {};
        for (const [k, v] of Object.entries(q)) if (!['length', 'pending', 'consumers', 'caught_up'].includes(k)) rest[k] = v;
        if (Object.keys(rest).length) card.append(V.kvTable(rest, { order: QUEUE_ORDER }));
        cards.append(card);
      }
      body.append(cards);
    }

    function statNum(v, label, cls) {
      const d = el('div', 'stat-num ' + (cls || ''));
      d.append(el('div', 'stat-value', v === null ? '—' : V.fmtNum(v)), el('div', 'stat-label', label));
      return d;
    }

    // One table of every live worker, grouped by stage.
    function renderWorkers(sys) {
      const s = obj(sys);
      const stages = obj(s.stages);
      const now = num(s.time) !== null ? s.time : Date.now() / 1000;
      const body = workersPanel.body;
      const rows = [];
      for (const stage of Object.keys(stages).sort()) {
        for (const w of arr(stages[stage]).filter(V.isObj)) rows.push(Object.assign({ stage }, w));
      }
      workersPanel.note.textContent = rows.length + (rows.length === 1 ? ' worker' : ' workers');
      if (!rows.length) { body.replaceChildren(el('p', 'muted', 'No workers have reported.')); return; }
      body.replaceChildren(V.dataTable(rows, ['stage', ...WORKER_ORDER], (k, v) => {
        if (k === 'stage') return el('span', 'chip', str(v));
        if (k !== 'since') return null;
        const d = V.toDate(v);
        if (!d) return null;
        const span = el('span');
        span.append(V.timeEl(v), el('span', 'muted', ' · up ' + V.fmtDuration(now - d.getTime() / 1000)));
        return span;
      }));
    }

    // Backend and model per analyzer worker; for the cpu backend, which detector runs and,
    // when it is the HOG fallback, why (the object model is missing or did not load).
    function renderAnalyzers(sys) {
      const rows = arr(obj(sys).analyzers).filter(V.isObj);
      const body = analyzersPanel.body;
      analyzersPanel.note.textContent = rows.length + (rows.length === 1 ? ' worker' : ' workers');
      if (!rows.length) { body.replaceChildren(el('p', 'muted', 'No analyzer has reported.')); return; }
      body.replaceChildren(...rows.map((a) => {
        const d = obj(a.detector);
        const row = el('div', 'stat-row analyzer-row');
        row.dataset.worker = str(a.worker);
        row.append(el('span', 'stat-name', str(a.worker)), el('span', 'chip', str(a.backend)), el('span', null, str(a.model)));
        if (d.name) {
          row.append(el('span', 'badge ' + (d.fallback ? 'warn' : 'yes'), d.fallback ? 'HOG fallback' : 'detector: ' + str(d.name)));
          if (d.fallback && d.reason) row.append(el('span', 'muted analyzer-reason', str(d.reason)));
        }
        return row;
      }));
    }

    // ---- metrics -------------------------------------------------------------------

    function renderMetrics() {
      const words = metricsFilter.toLowerCase().split(/\s+/).filter(Boolean);
      const rows = st.metrics.rows.filter((r) => {
        if (!words.length) return true;
        const hay = (r.name + ' ' + Object.entries(r.labels).map(([k, v]) => k + '=' + v + ' ' + v).join(' ')).toLowerCase();
        return words.every((w) => hay.includes(w));
      });
      metricsPanel.note.textContent = rows.length + ' of ' + st.metrics.rows.length + ' series';
      const t = el('table', 'data metrics-table');
      t.id = 'metrics-table';
      const hr = el('tr');
      ['metric', 'labels', 'value'].forEach((h) => hr.append(el('th', null, h)));
      const thead = el('thead');
      thead.append(hr);
      const tbody = el('tbody');
      for (const r of rows) {
        const tr = el('tr');
        const name = el('td', 'metric-name', r.name);
        if (st.metrics.help[r.name]) name.title = st.metrics.help[r.name];
        const labels = el('td');
        const chips = el('div', 'chips');
        for (const [k, v] of Object.entries(r.labels)) chips.append(el('span', 'chip', k + '=' + v));
        labels.append(chips);
        const value = el('td', 'num', Number.isFinite(r.value) ? V.fmtNum(r.value) : r.raw);
        value.title = r.raw;
        tr.append(name, labels, value);
        tbody.append(tr);
      }
      t.append(thead, tbody);
      if (!st.metrics.rows.length) metricsBox.replaceChildren(el('p', 'muted', 'No vigil_* metrics.'));
      else if (!rows.length) metricsBox.replaceChildren(el('p', 'muted', 'No metric matches the filter.'));
      else metricsBox.replaceChildren(t);
    }

    // ---- refresh ---------------------------------------------------------------------

    function failure(res, what) {
      const e = res.reason;
      if (e instanceof V.Unauthorized) return null;
      return V.notice(e instanceof V.ApiError && e.missing ? what + ' is not available on this server.' : V.errText(e, what),
        e instanceof V.ApiError && e.missing ? 'warn' : 'error');
    }

    async function refresh() {
      const [sys, rz, met] = await Promise.allSettled([
        api.get('/api/system'),
        api.get('/readyz', { accept: [503] }),
        api.get('/metrics', { text: true }),
      ]);
      if (!ctx.alive) return;
      const sysData = sys.status === 'fulfilled' ? obj(sys.value) : null;
      const rzData = rz.status === 'fulfilled' ? obj(rz.value) : null;
      renderReady(rzData, sysData);
      if (rz.status === 'rejected') { const n = failure(rz, 'Readiness'); if (n) readyPanel.body.prepend(n); }
      if (sysData) { renderQueues(sysData); renderAnalyzers(sysData); renderWorkers(sysData); } else {
        const n = failure(sys, 'System status');
        queuePanel.body.replaceChildren(...(n ? [n] : []));
        workersPanel.body.replaceChildren(...(n ? [n.cloneNode(true)] : []));
      }
      if (met.status === 'fulfilled') {
        st.metrics = parseMetrics(met.value);
        renderMetrics();
        sample(st.metrics.rows, Date.now() / 1000);
        renderCharts();
      } else {
        const n = failure(met, 'Metrics');
        if (n) metricsBox.replaceChildren(n);
      }
      const t = sysData && num(sysData.time) !== null ? new Date(sysData.time * 1000) : new Date();
      updated.textContent = 'updated ' + t.toLocaleTimeString() +
        (sysData && num(sysData.time) !== null && Math.abs(Date.now() / 1000 - sysData.time) > 5
          ? ' (server clock differs by ' + V.fmtDuration(Math.abs(Date.now() / 1000 - sysData.time)) + ')' : '');
    }

    ctx.every(REFRESH_MS, refresh);
  }

  V.pages.system = { view: 'system-view', nav: 'nav-system', title: 'System', mount };
})();
