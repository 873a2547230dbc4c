// A camera's timeline (camera page): motion level as a curve, activities as bands, events as
// ticks (each links to the packet inspector) and alerts as bars, over the last hours.
// Zoom with the range buttons, or drag across the chart to zoom into that stretch.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api, enc } = V;
  const SVG = 'http://www.w3.org/2000/svg';
  const RANGES = [['15m', 0.25], ['1h', 1], ['3h', 3], ['12h', 12], ['24h', 24]];
  const SEVERITIES = ['info', 'warning', 'critical'];

  function svg(tag, attrs) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    return n;
  }
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  V.cameraTimeline = function cameraTimeline(cameraId, ctx) {
    const st = { hours: 1, since: null, until: null, data: null, busy: false, again: false, drag: null };
    const panel = V.panel('Timeline', 'timeline-panel-cam');
    panel.node.id = 'camera-timeline';
    const bar = el('div', 'tl-bar');
    const buttons = RANGES.map(([label, h]) => {
      const b = V.button(label, 'small ghost tl-range', () => { st.hours = h; st.since = st.until = null; V.fire(load); });
      b.dataset.hours = String(h);
      return b;
    });
    const reset = V.button('Back to now', 'small ghost', () => { st.since = st.until = null; V.fire(load); });
    reset.hidden = true;
    bar.append(...buttons, reset, el('span', 'spacer'), el('span', 'muted tl-legend', 'motion · activity · events · alerts — drag to zoom'));
    const chart = el('div', 'tl-chart');
    chart.id = 'timeline-chart';
    const axis = el('div', 'tl-axis');
    const detail = el('div', 'tl-detail');
    panel.body.append(bar, chart, axis, detail);

    async function load() {
      if (st.busy) { st.again = true; return; }
      st.busy = true;
      try {
        const q = st.since ? { since: new Date(st.since * 1000).toISOString(), until: new Date(st.until * 1000).toISOString() }
          : { hours: st.hours };
        const data = obj(await api.get('/api/cameras/' + enc(cameraId) + '/timeline' + V.query(q)));
        if (!ctx.alive) return;
        st.data = data;
        render();
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) chart.replaceChildren(V.notice(V.errText(e, 'Timeline'), 'error'));
      } finally {
        st.busy = false;
        if (st.again && ctx.alive) { st.again = false; V.fire(load); }
      }
    }

    function render() {
      const d = st.data;
      const lo = num(d.since), hi = num(d.until);
      if (lo === null || hi === null || hi <= lo) return;
      const x = (t) => Math.min(100, Math.max(0, ((t - lo) / (hi - lo)) * 100));
      buttons.forEach((b) => b.setAttribute('aria-pressed', String(!st.since && Number(b.dataset.hours) === st.hours)));
      reset.hidden = !st.since;
      chart.replaceChildren();

      // Motion curve (0..max) in an SVG that stretches with the chart.
      const curve = svg('svg', { class: 'tl-motion', viewBox: '0 0 100 40', preserveAspectRatio: 'none' });
      const pts = arr(d.motion).filter((p) => Array.isArray(p));
      const peak = Math.max(0.02, ...pts.map((p) => Number(p[1]) || 0));
      const line = pts.map((p) => x(Number(p[0])).toFixed(2) + ',' + (40 - ((Number(p[1]) || 0) / peak) * 36).toFixed(2));
      if (line.length) curve.append(svg('polygon', { points: '0,40 ' + line.join(' ') + ' 100,40', class: 'tl-motion-area' }));
      chart.append(curve);

      const lane = (cls) => { const n = el('div', 'tl-lane ' + cls); chart.append(n); return n; };
      const acts = lane('tl-activities');
      for (const a of arr(d.activities)) {
        const b = el('div', 'tl-activity');
        b.style.left = x(a[0]) + '%';
        b.style.width = Math.max(0.3, x(a[1]) - x(a[0])) + '%';
        b.title = 'activity ' + clock(a[0]) + '–' + clock(a[1]);
        acts.append(b);
      }
      const evs = lane('tl-events');
      for (const e of arr(d.events).filter(V.isObj)) {
        const a = V.link(V.packetHref(str(e.packet_id)), '', 'tl-event reason-' + V.pick(e.reason, ['onset', 'motion', 'heartbeat'], 'other'));
        a.dataset.eventId = str(e.id);
        a.style.left = x(num(e.start) || lo) + '%';
        a.title = clock(e.start) + ' · ' + arr(e.labels).join(', ') + (e.summary ? ' · ' + str(e.summary) : '');
        a.setAttribute('aria-label', 'Event at ' + clock(e.start) + ': inspect its packet');
        a.addEventListener('mouseenter', () => showDetail(e));
        a.addEventListener('focus', () => showDetail(e));
        evs.append(a);
      }
      const als = lane('tl-alerts');
      for (const a of arr(d.alerts).filter(V.isObj)) {
        const b = V.link(a.packet_id ? V.packetHref(str(a.packet_id)) : '#/alerts', '', 'tl-alert sev-' + V.pick(a.severity, SEVERITIES, 'info'));
        b.dataset.alertId = str(a.id);
        b.style.left = x(a.first_seen) + '%';
        b.style.width = Math.max(0.5, x(a.last_seen) - x(a.first_seen)) + '%';
        b.title = str(a.title || a.rule) + ' · ' + str(a.state) + ' · ' + clock(a.first_seen) + '–' + clock(a.last_seen);
        als.append(b);
      }
      const sel = el('div', 'tl-selection');
      sel.hidden = true;
      chart.append(sel);
      st.sel = sel;

      axis.replaceChildren();
      for (let i = 0; i <= 4; i++) {
        const t = lo + ((hi - lo) * i) / 4;
        const tick = el('span', 'tl-tick', clock(t));
        tick.style.left = (i * 25) + '%';
        axis.append(tick);
      }
      panel.note.textContent = arr(d.events).length + ' events · ' + arr(d.alerts).length + ' alerts' +
        (d.truncated ? ' (showing the first ' + arr(d.events).length + ')' : '');
    }

    function showDetail(e) {
      detail.replaceChildren(V.timeEl(e.start), el('span', 'meta', arr(e.labels).join(', ') || 'no labels'),
        el('span', null, str(e.summary)), V.link(V.packetHref(str(e.packet_id)), 'inspect', 'inspect'));
    }

    // Drag to zoom: the stretch between press and release becomes the new range.
    const frac = (ev) => { const r = chart.getBoundingClientRect(); return Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)); };
    chart.addEventListener('pointerdown', (ev) => {
      if (ev.target instanceof Element && ev.target.closest('a')) return;
      st.drag = frac(ev);
      chart.setPointerCapture(ev.pointerId);
    });
    chart.addEventListener('pointermove', (ev) => {
      if (st.drag === null || !st.sel) return;
      const f = frac(ev);
      st.sel.hidden = false;
      st.sel.style.left = Math.min(f, st.drag) * 100 + '%';
      st.sel.style.width = Math.abs(f - st.drag) * 100 + '%';
    });
    chart.addEventListener('pointerup', (ev) => {
      if (st.drag === null) return;
      const a = st.drag, b = frac(ev);
      st.drag = null;
      if (st.sel) st.sel.hidden = true;
      const d = st.data;
      if (!d || Math.abs(b - a) < 0.01) return;
      const lo = d.since, span = d.until - d.since;
      st.since = lo + Math.min(a, b) * span;
      st.until = lo + Math.max(a, b) * span;
      V.fire(load);
    });

    // New events of this camera show up as they happen (when looking at "now").
    let pending = 0;
    ctx.onDispose(V.live.on('event', (ev) => {
      if (!V.isObj(ev) || str(ev.camera) !== cameraId || st.since || pending) return;
      pending = ctx.after(1000, () => { pending = 0; return load(); });
    }));
    ctx.onDispose(V.live.on('alert', (a) => {
      if (!V.isObj(a) || str(a.camera) !== cameraId || st.since || pending) return;
      pending = ctx.after(1000, () => { pending = 0; return load(); });
    }));
    ctx.every(30000, load, false);
    return { node: panel.node, load };
  };
})();
