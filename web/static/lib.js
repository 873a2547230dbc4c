// Vigil dashboard: shared helpers (DOM, formatting, API calls, common widgets).
// Loaded first; the pages (static/pages/*.js) and app.js build on window.Vigil.
// Every value from the server reaches the page through textContent or a checked attribute,
// never through innerHTML.
'use strict';

(function () {
  const V = (window.Vigil = window.Vigil || {});
  V.pages = V.pages || {};

  // ---- shared state ----------------------------------------------------------------

  V.session = { name: '', role: '' };
  V.isAdmin = () => V.session.role === 'admin';
  V.cameraNames = new Map();  // id -> display name, kept current by the live page's camera poll

  class Unauthorized extends Error {}
  class ApiError extends Error {
    constructor(status, detail, data) {
      super('HTTP ' + status + (detail ? ': ' + detail : ''));
      this.status = status;
      this.detail = detail;
      this.data = data;
    }
    // 404/405 on a route: the server does not have this feature (yet).
    get missing() { return this.status === 404 || this.status === 405; }
  }
  class NetworkError extends Error {}
  V.Unauthorized = Unauthorized;
  V.ApiError = ApiError;
  V.NetworkError = NetworkError;
  V.onUnauthorized = () => {};  // set by app.js

  // ---- small helpers ---------------------------------------------------------------

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  const str = (v, dflt = '') => (v === undefined || v === null ? dflt : String(v));
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const arr = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
  const isObj = (v) => !!v && typeof v === 'object' && !Array.isArray(v);
  // Class names built from data are limited to a known set.
  const pick = (v, allowed, dflt) => (allowed.includes(v) ? v : dflt);
  const enc = encodeURIComponent;

  // Only same-origin absolute paths are used as src/href: no javascript:, data: or other hosts.
  function safeUrl(u) {
    return typeof u === 'string' && u.startsWith('/') && !u.startsWith('//') && !u.includes('\\') ? u : null;
  }

  function parseTime(iso) {
    if (typeof iso !== 'string' || !iso) return null;
    let s = iso.replace(/(\.\d{3})\d+/, '$1');       // microseconds -> milliseconds
    if (!/(Z|[+-]\d\d:?\d\d)$/i.test(s)) s += 'Z';   // the API speaks UTC
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  // A time the API sends as ISO-8601 text or as epoch seconds (or milliseconds).
  function toDate(v) {
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) return new Date(v > 1e12 ? v : v * 1000);
    if (typeof v === 'string') {
      if (/^\d+(\.\d+)?$/.test(v)) return toDate(Number(v));
      return parseTime(v);
    }
    return null;
  }

  function fmtClock(d) {
    const clock = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    const today = new Date().toDateString() === d.toDateString();
    return today ? clock : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + clock;
  }

  function timeEl(v) {
    const d = toDate(v);
    const t = el('time', 'ts', d ? fmtClock(d) : '—');
    if (d) { t.dateTime = d.toISOString(); t.title = d.toLocaleString(); }
    return t;
  }

  function fmtAge(s) {
    if (s === null || s < 0) return 'no frames';
    if (s < 60) return s.toFixed(1) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  function fmtDuration(s) {
    if (s === null || !Number.isFinite(s)) return '—';
    if (s < 0) s = 0;
    if (s < 60) return Math.round(s) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function fmtNum(v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return str(v);
    if (Number.isInteger(v)) return v.toLocaleString();
    return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }

  const pct = (v) => (num(v) === null ? '—' : (v * 100 < 10 ? (v * 100).toFixed(1) : Math.round(v * 100)) + '%');

  // A value of unknown shape, as short text.
  function plain(v) {
    if (v === undefined || v === null) return '—';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'number') return fmtNum(v);
    if (typeof v === 'string') return v;
    try { return JSON.stringify(v); } catch (e) { return String(v); }
  }

  const looksLikeTimeKey = (k) => /(^|_)(at|since|time|created|updated|first_seen|last_seen|start|end)$/.test(k);

  // A value of unknown shape as a node: times as <time>, booleans as yes/no badges.
  function valueNode(key, v) {
    // Identifiers and codes keep their digits as sent (no thousands separators).
    if (typeof v === 'number' && /(^|_)(id|pid|port|status|code)$/.test(str(key))) return el('span', null, String(v));
    if ((typeof v === 'number' || typeof v === 'string') && looksLikeTimeKey(str(key)) && toDate(v) &&
        (typeof v !== 'number' || v > 1e8)) return timeEl(v);
    if (typeof v === 'boolean') return el('span', 'badge ' + (v ? 'yes' : 'no'), v ? 'yes' : 'no');
    if (v !== null && typeof v === 'object') return el('code', 'json', plain(v));
    return el('span', null, plain(v));
  }

  // ---- API -------------------------------------------------------------------------

  function detailText(data, text) {
    if (isObj(data) && data.detail !== undefined) {
      const d = data.detail;
      if (typeof d === 'string') return d;
      if (Array.isArray(d)) {
        return d.map((x) => {
          if (!isObj(x)) return plain(x);
          const loc = arr(x.loc).filter((p) => p !== 'body').join('.');
          return (loc ? loc + ': ' : '') + str(x.msg, plain(x));
        }).join('; ');
      }
      return plain(d);
    }
    if (isObj(data) && typeof data.error === 'string') return data.error;
    return str(text).trim().slice(0, 300);
  }

  // request('GET', '/api/x') -> parsed JSON (or text, or null for an empty body).
  // Throws Unauthorized (after signing out), ApiError (non-2xx, with the body's "detail"),
  // NetworkError. opts.accept lists extra statuses whose body is returned as data (readyz's 503).
  async function request(method, path, body, opts = {}) {
    const headers = { Accept: opts.text ? 'text/plain' : 'application/json' };
    const init = { method, credentials: 'same-origin', headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new NetworkError('Cannot reach the server.');
    }
    if (res.status === 401) { V.onUnauthorized(); throw new Unauthorized('session ended'); }
    let text = '';
    try { text = await res.text(); } catch (e) { text = ''; }
    let data = null;
    if (opts.text && res.ok) data = text;
    else if (text) { try { data = JSON.parse(text); } catch (e) { data = text; } }
    if (res.ok || arr(opts.accept).includes(res.status)) return data;
    throw new ApiError(res.status, detailText(data, text), data);
  }

  const api = {
    get: (p, opts) => request('GET', p, undefined, opts),
    post: (p, b, opts) => request('POST', p, b, opts),
    put: (p, b, opts) => request('PUT', p, b, opts),
    patch: (p, b, opts) => request('PATCH', p, b, opts),
    del: (p, opts) => request('DELETE', p, undefined, opts),
  };

  function query(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === '') continue;
      parts.push(enc(k) + '=' + enc(String(v)));
    }
    return parts.length ? '?' + parts.join('&') : '';
  }

  // A user-facing line for an error from request().
  function errText(e, what) {
    if (e instanceof ApiError) {
      if (e.status === 403) return (what ? what + ': ' : '') + 'this needs the admin role (' + (e.detail || 'HTTP 403') + ')';
      return (what ? what + ' failed: ' : '') + e.message;
    }
    if (e instanceof NetworkError) return (what ? what + ' failed: ' : '') + 'cannot reach the server.';
    return (what ? what + ' failed: ' : '') + str(e && e.message, 'unexpected error');
  }

  // Runs a promise-returning function from an event handler: no unhandled rejections.
  function fire(fn) {
    try {
      const p = fn();
      if (p && typeof p.catch === 'function') p.catch(() => {});
    } catch (e) { /* reported by the caller's own UI */ }
  }

  // ---- live feed (app.js publishes websocket messages here) --------------------------

  const listeners = { event: new Set(), alert: new Set() };
  V.live = {
    on(type, fn) {
      const set = listeners[type];
      if (!set) return () => {};
      set.add(fn);
      return () => set.delete(fn);
    },
    emit(type, msg) {
      for (const fn of [...(listeners[type] || [])]) {
        try { fn(msg); } catch (e) { /* one page's bug must not break the feed */ }
      }
    },
  };

  const cameraName = (id) => V.cameraNames.get(str(id)) || str(id, '?');

  // ---- widgets -----------------------------------------------------------------------

  function link(href, text, cls) {
    const a = el('a', cls, text);
    a.href = href;
    return a;
  }
  const cameraHref = (id) => '#/camera/' + enc(str(id));
  const packetHref = (id) => '#/packet/' + enc(str(id));

  function button(text, cls, onClick, type = 'button') {
    const b = el('button', cls, text);
    b.type = type;
    if (onClick) b.addEventListener('click', onClick);
    return b;
  }

  // Key/value table: preferred keys first (in order), then every other key.
  // opts: {order: [keys], labels: {key: text}, skip: [keys], fmt: {key: (value) => node|text}}
  function kvTable(data, opts = {}) {
    const order = arr(opts.order), labels = obj(opts.labels), skip = arr(opts.skip), fmt = obj(opts.fmt);
    const t = el('table', 'kv');
    const body = el('tbody');
    const d = obj(data);
    const keys = [...order.filter((k) => k in d), ...Object.keys(d).filter((k) => !order.includes(k))]
      .filter((k) => !skip.includes(k));
    for (const k of keys) {
      const tr = el('tr');
      tr.dataset.key = k;
      const th = el('th', null, labels[k] || k.replace(/_/g, ' '));
      const td = el('td');
      let v = null;
      if (typeof fmt[k] === 'function') { try { v = fmt[k](d[k], d); } catch (e) { v = null; } }
      if (v === null || v === undefined) v = valueNode(k, d[k]);
      td.append(typeof v === 'string' ? document.createTextNode(v) : v);
      tr.append(th, td);
      body.append(tr);
    }
    t.append(body);
    return t;
  }

  // Table of objects: columns are the preferred keys present, then any other keys seen.
  // cell(key, value, row) may return a node to override the default rendering.
  function dataTable(rows, preferred = [], cell = null, extraCols = []) {
    const list = arr(rows).filter(isObj);
    const seen = new Set();
    for (const r of list) Object.keys(r).forEach((k) => seen.add(k));
    const cols = [...preferred.filter((k) => seen.has(k)), ...[...seen].filter((k) => !preferred.includes(k))];
    const t = el('table', 'data');
    const head = el('tr');
    cols.forEach((k) => head.append(el('th', null, k.replace(/_/g, ' '))));
    extraCols.forEach((c) => head.append(el('th', null, c.title || '')));
    const thead = el('thead');
    thead.append(head);
    const tbody = el('tbody');
    for (const r of list) {
      const tr = el('tr');
      for (const k of cols) {
        const td = el('td');
        td.dataset.key = k;
        const custom = cell ? cell(k, r[k], r) : null;
        td.append(custom || valueNode(k, r[k]));
        tr.append(td);
      }
      for (const c of extraCols) {
        const td = el('td', 'actions');
        const n = c.render(r);
        if (n) td.append(n);
        tr.append(td);
      }
      tbody.append(tr);
    }
    t.append(thead, tbody);
    return t;
  }

  // A titled panel: {node, body, note} (note: small text after the title).
  function panel(titleText, cls) {
    const node = el('section', 'panel' + (cls ? ' ' + cls : ''));
    const h = el('h2', null, titleText);
    const note = el('span', 'note');
    h.append(note);
    const body = el('div', 'panel-body');
    node.append(h, body);
    return { node, body, note, head: h };
  }

  function notice(text, kind = 'info') {
    return el('p', 'notice notice-' + pick(kind, ['info', 'error', 'ok', 'warn'], 'info'), text);
  }

  function setMsg(node, text, kind = 'error') {
    node.textContent = str(text);
    node.className = 'form-msg ' + pick(kind, ['info', 'error', 'ok', 'warn'], 'info');
    node.hidden = !text;
  }

  // A labelled form field. `input` is any form control; returns the wrapper.
  function field(labelText, input, hint) {
    const wrap = el('label', 'field');
    wrap.append(el('span', 'field-label', labelText), input);
    if (hint) wrap.append(el('span', 'field-hint', hint));
    return wrap;
  }

  function input(name, type = 'text', value = '', attrs = {}) {
    const i = el('input');
    i.name = name;
    i.type = type;
    if (type === 'checkbox') i.checked = !!value; else i.value = str(value);
    for (const [k, v] of Object.entries(attrs)) i.setAttribute(k, v);
    return i;
  }

  function checkbox(name, labelText, checked) {
    const wrap = el('label', 'check');
    const i = input(name, 'checkbox', checked);
    wrap.append(i, el('span', null, labelText));
    return { wrap, input: i };
  }

  function select(name, options, value) {
    const s = el('select');
    s.name = name;
    for (const o of options) {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      const opt = el('option', null, label);
      opt.value = str(v);
      s.append(opt);
    }
    s.value = str(value);
    return s;
  }

  // Cameras known to the dashboard, for <select>s: [[id, name], ...].
  function cameraOptions() {
    return [...V.cameraNames.entries()].sort((a, b) => a[0].localeCompare(b[0]))
      .map(([id, name]) => [id, name && name !== id ? name + ' (' + id + ')' : id]);
  }

  // An event card (used by the live timeline and the camera page). Clicking its keyframe
  // strip, or "inspect", opens the packet inspector.
  function renderEvent(ev) {
    const reason = str(ev.reason, 'unknown');
    const row = el('article', 'event');
    row.dataset.eventId = String(ev.id);
    row.dataset.reason = reason;
    const packetId = typeof ev.packet_id === 'string' && ev.packet_id ? ev.packet_id : null;

    const head = el('div', 'event-head');
    const cam = link(cameraHref(ev.camera), cameraName(ev.camera), 'event-camera');
    cam.title = str(ev.camera);
    head.append(cam, timeEl(ev.start),
      el('span', 'badge reason reason-' + pick(reason, ['onset', 'motion', 'heartbeat', 'flush'], 'other'), reason));
    if (ev.status && ev.status !== 'ok') head.append(el('span', 'badge bad', str(ev.status)));
    const area = num(obj(ev.motion).area);
    if (area !== null && area > 0) head.append(el('span', 'meta', 'motion ' + Math.round(area * 100) + '%'));
    const lat = num(ev.latency_ms);
    if (lat !== null) head.append(el('span', 'meta latency', Math.round(lat) + ' ms'));
    if (packetId) head.append(link(packetHref(packetId), 'inspect', 'inspect'));
    row.append(head);
    const clipAt = el('div', 'clip-slot');
    head.append(clipToggle('/api/events/' + enc(String(ev.id)) + '/clip.webm', 'vigil-' + String(ev.id), clipAt));

    const chips = el('div', 'chips');
    const counts = obj(ev.counts);
    for (const label of arr(ev.labels)) {
      const n = num(counts[label]);
      chips.append(el('span', 'chip', str(label) + (n !== null && n > 1 ? ' ×' + n : '')));
    }
    for (const r of arr(ev.rules)) {
      if (!r || !r.match) continue;
      const chip = el('span', 'chip rule', '⚑ ' + str(r.rule));
      const conf = num(r.confidence);
      chip.title = (conf !== null ? Math.round(conf * 100) + '% · ' : '') + str(r.evidence);
      chips.append(chip);
    }
    if (chips.childElementCount) row.append(chips);

    const summary = str(ev.summary).trim();
    if (summary) row.append(el('p', 'summary', summary));

    row.append(strip(ev.frames, packetId), clipAt);
    return row;
  }

  // A clip: <video> (WebM, plays in every browser) and a download link. The video loads only
  // when shown, so a list of events costs nothing until one is played.
  function clipPlayer(url, name) {
    const box = el('figure', 'clip');
    const video = el('video', 'clip-video');
    video.controls = true;
    video.muted = true;
    video.playsInline = true;
    video.preload = 'auto';
    video.src = url;
    const cap = el('figcaption', 'clip-caption');
    const dl = link(url + (url.includes('?') ? '&' : '?') + 'download=true', '⬇ Download', 'clip-download');
    dl.setAttribute('download', (name || 'vigil-clip') + '.webm');
    const note = el('span', 'muted clip-note', '');
    video.addEventListener('error', () => { note.textContent = 'This clip is not available (trimmed by retention?).'; });
    cap.append(dl, note);
    box.append(video, cap);
    return box;
  }

  // A "▶ clip" button that opens the clip into `slot` (and closes it again).
  function clipToggle(url, name, slot) {
    const b = button('▶ clip', 'small ghost clip-button', (e) => {
      e.stopPropagation();
      if (slot.firstChild) { slot.replaceChildren(); b.textContent = '▶ clip'; return; }
      const player = clipPlayer(url, name);
      slot.replaceChildren(player);
      b.textContent = '✕ clip';
      const v = player.querySelector('video');
      if (v) v.play().catch(() => { /* autoplay refused: the controls are there */ });
    });
    b.title = 'Play this clip (with the seconds before and after)';
    return b;
  }

  // Keyframe thumbnails. With a packet id they link to the inspector, else to the image.
  function strip(frames, packetId) {
    const s = el('div', 'strip');
    if (packetId) {
      s.title = 'Inspect this packet';
      // The whole strip opens the inspector, not only the thumbnails.
      s.addEventListener('click', (e) => {
        if (!(e.target instanceof Element) || !e.target.closest('a')) location.hash = packetHref(packetId);
      });
    }
    for (const f of arr(frames)) {
      const url = safeUrl(f && f.url);
      const tid = num(f && f.temporal_id);
      const thumb = el('figure', 'thumb');
      if (url) {
        const a = el('a');
        if (packetId) a.href = packetHref(packetId);
        else { a.href = url; a.target = '_blank'; a.rel = 'noopener'; }
        const img = el('img');
        img.loading = 'lazy';  // set before src, or the browser fetches eagerly
        img.decoding = 'async';
        img.width = 96; img.height = 54;
        img.alt = 'keyframe' + (tid !== null ? ' ' + tid : '');
        img.addEventListener('error', () => thumb.classList.add('missing'), { once: true });
        img.src = url;
        a.append(img);
        thumb.append(a);
      }
      thumb.append(el('figcaption', null, tid !== null ? 't' + tid : '–'));
      s.append(thumb);
    }
    return s;
  }

  // datetime-local value (local time, minutes) for a Date, and back to an ISO string (UTC).
  function toLocalInput(d) {
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
  }
  function fromLocalInput(v) {
    if (!v) return null;
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }

  // Whether a camera's snapshot can exist, from its status: requests that can only 404
  // (nothing written yet, or no ingest status at all) are skipped to keep the console clean.
  function mayHaveFrame(status, hasFrame) {
    if (hasFrame) return true;
    const s = obj(status);
    const written = num(s.written), age = num(s.last_frame_age_s);
    if (written !== null) return written > 0 || (age !== null && age >= 0);
    if (age !== null) return age >= 0;
    return s.state === 'streaming';
  }

  // Lists of ids typed as "a, b c".
  const splitList = (s) => str(s).split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

  Object.assign(V, {
    el, str, num, arr, obj, isObj, pick, enc, safeUrl, parseTime, toDate, fmtClock, timeEl, fmtAge,
    fmtDuration, fmtNum, pct, plain, valueNode, request, api, query, errText, fire, cameraName, link,
    cameraHref, packetHref, button, kvTable, panel, dataTable, notice, setMsg, field, input, checkbox, select,
    cameraOptions, renderEvent, strip, clipPlayer, clipToggle, mayHaveFrame, toLocalInput, fromLocalInput, splitList, detailText,
  });
})();
