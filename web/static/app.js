// Vigil dashboard: sign-in, the live home (cameras, event timeline, alerts over a websocket),
// and the hash router that shows the other views (static/pages/*.js). Plain DOM, no framework.
// Every value from the server reaches the page through textContent or a checked attribute,
// never through innerHTML.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, pick, safeUrl, parseTime, timeEl, fmtAge } = V;
  const getJSON = (path) => V.api.get(path);

  const MAX_EVENTS = 200;          // event rows kept in the DOM
  const MAX_ALERTS = 200;          // alert rows kept (resolved ones are dropped first)
  const CAMERA_POLL_MS = 2000;
  const SNAPSHOT_MS = 1000;
  const SNAPSHOT_RETRY_MS = 5000;  // after a failed snapshot (404: no frame yet)
  // The first few tiles play the live MJPEG stream; more would take the browser's six
  // connections per host that the API calls need, so further tiles stay on snapshots.
  const LIVE_TILES = 3;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 10000;
  const RESUME_REWIND_MS = 5000;   // see resumeCursor()
  const STATES = ['streaming', 'connecting', 'retrying', 'error', 'ended', 'stopped', 'unknown'];
  const SEVERITIES = ['info', 'warning', 'critical'];
  const NAV = ['nav-live', 'nav-events', 'nav-alerts', 'nav-rules', 'nav-webhooks', 'nav-system'];

  const $ = (id) => document.getElementById(id);
  const S = {
    running: false,
    gen: 0,                  // bumped on sign-out so late async results are ignored
    timers: [],
    pollBusy: false,
    cameras: new Map(),      // id -> card state
    seenEvents: new Set(),   // event ids already shown (dedupes history vs. websocket replay)
    alerts: new Map(),       // id -> {data, seq, row}
    ws: null,
    cursor: null,            // highest stream id received over the websocket
    backoff: BACKOFF_MIN_MS,
    reconnectTimer: 0,
    routeKey: null,          // the view shown now ("live", "camera:lot", ...)
    hash: '#/',              // its address (V.prevHash: the one before, for "back" links)
    page: null,              // PageCtx of the page shown now (not the live home)
  };
  const Unauthorized = V.Unauthorized;
  V.onUnauthorized = () => sessionLost();

  // ---- sign-in / sign-out ----------------------------------------------------------

  function showLogin(message) {
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    $('login-error').textContent = message || '';
    $('token-input').focus();
  }

  function setLoginBusy(busy) {
    $('login-button').disabled = busy;
    $('login-button').textContent = busy ? 'Signing in…' : 'Sign in';
  }

  // Reads #token=... and wipes it from the address bar (and history) before anything else,
  // so the token is not left visible, bookmarked or shared even if the sign-in fails.
  function takeFragmentToken() {
    // Parsed by hand: URLSearchParams would turn a '+' (common in base64 tokens) into a space.
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash || '');
    if (!m) return null;
    history.replaceState(null, '', location.pathname + location.search);
    let token = m[1];
    try { token = decodeURIComponent(token); } catch (e) { /* keep it as typed */ }
    return token.trim() || null;
  }

  async function login(token) {
    setLoginBusy(true);
    try {
      const res = await fetch('/api/login', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ token }),
      });
      if (res.ok) {
        $('token-input').value = '';
        const me = await res.json();
        V.fire(() => enterApp(me));
        return;
      }
      showLogin(res.status === 401 ? 'Invalid token.'
        : res.status === 429 ? 'Too many attempts. Wait a minute, then try again.'
        : 'Sign-in failed (HTTP ' + res.status + ').');
    } catch (e) {
      if (!S.running) showLogin('Cannot reach the server.');
    } finally {
      setLoginBusy(false);
    }
  }

  async function checkSession() {
    try {
      const res = await fetch('/api/me', { credentials: 'same-origin' });
      if (res.ok) return await enterApp(await res.json());
      showLogin(res.status === 401 ? '' : 'Server error (HTTP ' + res.status + ').');
    } catch (e) {
      if (!S.running) showLogin('Cannot reach the server.');
    }
  }

  async function logout() {
    try { await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' }); } catch (e) { /* cookie may linger; still leave */ }
    stop();
    showLogin('Signed out.');
  }

  function sessionLost() {
    if (!S.running) return;
    stop();
    showLogin('Your session has ended. Please sign in again.');
  }

  function setUser(name, role) {
    V.session = { name: str(name), role: str(role) };
    $('user-name').textContent = str(name, 'unknown') + (role ? ' (' + role + ')' : '');
    $('add-camera-button').hidden = !V.isAdmin();
  }

  async function enterApp(me) {
    me = obj(me);
    setUser(me.name, me.role);
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    if (S.running) return;
    S.running = true;
    const gen = ++S.gen;
    setConn('connecting');
    await pollCameras();  // first, so events and alerts can show camera names
    if (gen !== S.gen) return;
    S.timers.push(setInterval(pollCameras, CAMERA_POLL_MS), setInterval(refreshSnapshots, SNAPSHOT_MS));
    route();
    await loadHistory();
    if (gen === S.gen && S.running) connectWs();
  }

  function stop() {
    S.running = false;
    S.gen++;
    stopTileStreams();
    S.timers.forEach(clearInterval);
    S.timers = [];
    clearTimeout(S.reconnectTimer);
    S.reconnectTimer = 0;
    if (S.ws) { const ws = S.ws; S.ws = null; ws.onclose = null; ws.onmessage = null; ws.close(); }
    closePage();
    closeCameraDialog();
    S.routeKey = null;
    // Nothing of the previous session stays on screen or in memory.
    S.cursor = null;
    S.backoff = BACKOFF_MIN_MS;
    S.cameras.clear(); V.cameraNames.clear(); S.seenEvents.clear(); S.alerts.clear();
    V.session = { name: '', role: '' };
    V.prevHash = null;
    ['camera-grid', 'timeline', 'alerts'].forEach((id) => $(id).replaceChildren());
    ['camera-note', 'event-count', 'alert-count', 'user-name'].forEach((id) => { $(id).textContent = ''; });
    $('add-camera-button').hidden = true;
    setConn('offline');
  }

  // ---- router ----------------------------------------------------------------------

  // A page's lifetime: timers and listeners that end when the user leaves the view.
  class PageCtx {
    constructor() { this.alive = true; this.timeouts = new Set(); this.cleanups = []; }
    after(ms, fn) {
      const t = setTimeout(() => { this.timeouts.delete(t); if (this.alive) V.fire(fn); }, ms);
      this.timeouts.add(t);
      return t;
    }
    // fn (may be async) runs now and then every `ms` after the previous run finished,
    // skipped while the browser tab is hidden.
    every(ms, fn, immediate = true) {
      const tick = async () => {
        if (!this.alive) return;
        if (!document.hidden) { try { await fn(); } catch (e) { /* the page shows its own errors */ } }
        if (this.alive) this.after(ms, tick);
      };
      if (immediate) V.fire(tick); else this.after(ms, tick);
    }
    onDispose(fn) { this.cleanups.push(fn); }
    dispose() {
      this.alive = false;
      this.timeouts.forEach(clearTimeout);
      this.timeouts.clear();
      for (const fn of this.cleanups.splice(0)) { try { fn(); } catch (e) { /* ignore */ } }
    }
  }

  const ROUTES = [
    [/^\/?$/, 'live'],
    [/^\/camera\/([^/]+)$/, 'camera'],
    [/^\/packet\/([^/]+)$/, 'packet'],
    [/^\/events$/, 'events'],
    [/^\/alerts$/, 'alerts'],
    [/^\/rules$/, 'rules'],
    [/^\/webhooks$/, 'webhooks'],
    [/^\/system$/, 'system'],
  ];

  function parseRoute(hash) {
    let h = str(hash).replace(/^#/, '').split('?')[0];
    if (h.length > 1) h = h.replace(/\/+$/, '');
    if (!h.startsWith('/')) h = '/' + h;  // "#", "" and anything odd -> home
    for (const [re, name] of ROUTES) {
      const m = re.exec(h);
      if (!m) continue;
      let param = null;
      if (m[1] !== undefined) {
        try { param = decodeURIComponent(m[1]); } catch (e) { param = m[1]; }
      }
      return { name, param, known: true };
    }
    return { name: 'live', param: null, known: false };
  }

  function closePage() {
    if (S.page) { S.page.dispose(); S.page = null; }
    // Pages leave nothing behind: hidden copies would confuse selectors (and cost memory).
    document.querySelectorAll('#page-root > .page').forEach((sec) => { sec.replaceChildren(); sec.hidden = true; });
  }

  function route() {
    if (!S.running) return;
    const r = parseRoute(location.hash);
    const key = r.name + ':' + str(r.param);
    if (key === S.routeKey) return;
    closePage();
    if (S.routeKey !== null) V.prevHash = S.hash;
    S.routeKey = key;
    S.hash = location.hash || '#/';
    const page = r.name === 'live' ? null : V.pages[r.name];
    const navId = page ? page.nav : 'nav-live';
    for (const id of NAV) {
      const a = $(id);
      if (!a) continue;
      if (id === navId) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    $('live-view').hidden = r.name !== 'live';
    if (r.name !== 'live') stopTileStreams();
    $('page-root').hidden = r.name === 'live';
    if (!page) {
      document.title = 'Vigil';
      refreshSnapshots();
      return;
    }
    const root = $(page.view);
    root.hidden = false;
    $('page-root').scrollTop = 0;
    document.title = (page.title || r.name) + (r.param ? ' ' + r.param : '') + ' · Vigil';
    const ctx = new PageCtx();
    S.page = ctx;
    try {
      const p = page.mount(root, r.param, ctx);
      if (p && typeof p.catch === 'function') {
        p.catch((e) => { if (ctx.alive && !(e instanceof Unauthorized)) root.append(V.notice(V.errText(e), 'error')); });
      }
    } catch (e) {
      root.append(V.notice('This view failed to open: ' + str(e && e.message), 'error'));
    }
  }

  const onLive = () => S.routeKey === 'live:';

  // ---- cameras ---------------------------------------------------------------------

  async function pollCameras() {
    if (S.pollBusy || !S.running) return;
    S.pollBusy = true;
    const gen = S.gen;
    try {
      const list = await getJSON('/api/cameras');
      if (gen !== S.gen) return;
      renderCameras(arr(list));
      $('camera-note').textContent = S.cameras.size ? String(S.cameras.size) : 'none configured';
    } catch (e) {
      if (!(e instanceof Unauthorized) && gen === S.gen) $('camera-note').textContent = 'camera list unavailable, retrying';
    } finally {
      S.pollBusy = false;
    }
  }
  V.refreshCameras = () => pollCameras();

  function renderCameras(list) {
    const grid = $('camera-grid');
    const seen = new Set();
    let i = 0;
    for (const c of list) {
      if (!c || c.id === undefined || c.id === null) continue;
      const id = String(c.id);
      if (seen.has(id)) continue;
      seen.add(id);
      V.cameraNames.set(id, str(c.name) || id);
      let cam = S.cameras.get(id);
      if (!cam) { cam = makeCard(id); S.cameras.set(id, cam); }
      // Keep the server's order, touching the DOM only when a card is out of place.
      if (grid.children[i] !== cam.card) grid.insertBefore(cam.card, grid.children[i] || null);
      i++;
      updateCard(cam, c);
    }
    for (const [id, cam] of S.cameras) {
      if (!seen.has(id)) { cam.img.removeAttribute('src'); cam.card.remove(); S.cameras.delete(id); V.cameraNames.delete(id); }
    }
  }

  function makeCard(id) {
    const card = el('article', 'camera-card');
    card.dataset.cameraId = id;
    // The whole card opens the camera page.
    card.tabIndex = 0;
    card.setAttribute('role', 'link');
    card.setAttribute('aria-label', 'Open camera ' + id);
    const open = () => { location.hash = V.cameraHref(id); };
    card.addEventListener('click', (e) => { if (!e.defaultPrevented) open(); });
    card.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } });
    const frame = el('div', 'frame');
    const img = el('img');
    img.alt = 'Latest frame of ' + id;
    img.decoding = 'async';
    const badge = el('span', 'badge state state-unknown', 'unknown');
    frame.append(img, el('span', 'no-frame', 'No frame yet'), badge);
    const name = el('div', 'cam-name');
    const stats = el('div', 'cam-stats');
    const error = el('div', 'cam-error');
    error.hidden = true;
    const body = el('div', 'cam-body');
    body.append(name, stats, error);
    card.append(frame, body);
    const cam = { id, card, img, badge, name, stats, error, url: null, loading: false, loadStart: 0,
      retryAt: 0, mayHaveFrame: true, prev: null, fps: null };
    img.addEventListener('load', () => { cam.loading = false; card.classList.add('has-frame'); });
    img.addEventListener('error', () => {
      if (cam.live) { cam.live = false; cam.liveFailed = true; card.classList.remove('live'); }
      cam.loading = false;
      card.classList.remove('has-frame');
      cam.retryAt = Date.now() + SNAPSHOT_RETRY_MS;
    });
    return cam;
  }

  function updateCard(cam, c) {
    const st = obj(c.status);
    const rawState = str(st.state, 'unknown');
    const state = pick(rawState, STATES, 'unknown');
    cam.badge.className = 'badge state state-' + state;
    cam.badge.textContent = c.enabled === false ? 'disabled' : rawState;
    cam.card.dataset.state = state;
    cam.name.textContent = str(c.name) || cam.id;
    cam.name.title = str(c.source);
    cam.url = safeUrl(c.snapshot_url);

    // Sampled fps from the counter delta; the status's own "updated" stamp is preferred
    // because the status is only republished every so often, not on each poll.
    const sampled = num(st.sampled);
    const upd = num(st.updated);
    const t = upd !== null ? upd : performance.now() / 1000;
    const clock = upd !== null ? 'server' : 'client';
    const p = cam.prev;
    if (p && p.clock === clock && sampled !== null && p.sampled !== null && t > p.t) {
      const rate = (sampled - p.sampled) / (t - p.t);
      cam.fps = rate >= 0 ? rate : null;  // negative: the worker restarted and counters reset
    }
    if (!p || p.clock !== clock || t > p.t) cam.prev = { sampled, t, clock };

    const parts = [];
    const target = num(c.sample_fps);
    parts.push((cam.fps === null ? '–' : cam.fps.toFixed(1)) + (target !== null ? ' / ' + target + ' fps' : ' fps'));
    const dropped = num(st.dropped);
    if (dropped !== null) parts.push(dropped + ' dropped');
    const age = num(st.last_frame_age_s);
    if (age !== null) parts.push(fmtAge(age));
    cam.stats.textContent = parts.join(' · ');

    const err = str(st.last_error);
    cam.error.hidden = !err;
    cam.error.textContent = err;
    cam.error.title = err;

    // Skip snapshot requests that can only 404 (nothing written yet), to keep the console clean.
    cam.mayHaveFrame = V.mayHaveFrame(st, cam.card.classList.contains('has-frame'));
  }

  function stopTileStreams() {
    for (const cam of S.cameras.values()) {
      if (cam.live) { cam.live = false; cam.img.removeAttribute('src'); cam.card.classList.remove('live'); }
    }
  }

  function refreshSnapshots() {
    // Only while the live home is on screen: the camera page has its own live view.
    if (document.hidden || !S.running || !onLive()) { stopTileStreams(); return; }
    const now = Date.now();
    let i = 0;
    for (const cam of S.cameras.values()) {
      const slot = i++;
      if (!cam.url || !cam.mayHaveFrame || now < cam.retryAt) continue;
      if (slot < LIVE_TILES && !cam.liveFailed) {
        if (!cam.live) {
          cam.live = true;
          cam.card.classList.add('live');
          cam.img.src = '/api/cameras/' + V.enc(cam.id) + '/live.mjpeg?t=' + now;
        }
        continue;
      }
      if (cam.loading && now - cam.loadStart < 10000) continue;  // one request at a time per card
      cam.loading = true;
      cam.loadStart = now;
      // The browser keeps showing the previous frame until the new one has loaded: no flicker.
      cam.img.src = cam.url + (cam.url.includes('?') ? '&' : '?') + 't=' + now;
    }
  }

  // ---- add camera (admins) -----------------------------------------------------------

  function openCameraDialog() {
    const dlg = $('camera-dialog');
    const body = $('camera-dialog-body');
    body.replaceChildren();
    const form = V.buildCameraForm(null, {
      onDone: () => { closeCameraDialog(); V.fire(pollCameras); },
      onCancel: () => closeCameraDialog(),
    });
    body.append(form);
    if (typeof dlg.showModal === 'function') {
      try { dlg.showModal(); } catch (e) { dlg.setAttribute('open', ''); }
    } else dlg.setAttribute('open', '');
    const first = form.querySelector('input');
    if (first) first.focus();
  }

  function closeCameraDialog() {
    const dlg = $('camera-dialog');
    if (!dlg) return;
    if (typeof dlg.close === 'function' && dlg.open) dlg.close(); else dlg.removeAttribute('open');
    $('camera-dialog-body').replaceChildren();
  }

  // ---- events ----------------------------------------------------------------------

  function addEvent(ev, live) {
    if (!ev || (typeof ev.id !== 'string' && typeof ev.id !== 'number')) return;
    const id = String(ev.id);
    if (S.seenEvents.has(id)) return;
    S.seenEvents.add(id);
    if (S.seenEvents.size > MAX_EVENTS * 5) S.seenEvents.delete(S.seenEvents.values().next().value);
    const row = V.renderEvent(ev);
    const tl = $('timeline');
    if (live) { row.classList.add('fresh'); tl.prepend(row); } else tl.append(row);
    while (tl.childElementCount > MAX_EVENTS) tl.lastElementChild.remove();
    $('event-count').textContent = String(tl.childElementCount);
  }

  // ---- alerts ----------------------------------------------------------------------

  function upsertAlert(a, live) {
    if (!a || (typeof a.id !== 'string' && typeof a.id !== 'number')) return;
    const id = String(a.id);
    const seq = num(a.seq) !== null ? a.seq : 0;
    const cur = S.alerts.get(id);
    // Ignore older changes, and replays of the one already shown (websocket resume rewinds a bit).
    if (cur && (cur.seq > seq || (cur.seq === seq && cur.data.state === a.state && cur.data.last_seen === a.last_seen))) return;
    const row = renderAlert(a, id);
    if (live) row.classList.add('fresh');
    if (cur) cur.row.replaceWith(row); else $('alerts').append(row);
    S.alerts.set(id, { data: a, seq, row });
  }

  function renderAlert(a, id) {
    const sev = pick(a.severity, SEVERITIES, 'info');
    const state = pick(a.state, ['open', 'update', 'resolved'], 'open');
    const row = el('article', 'alert sev-' + sev + ' state-' + state);
    row.dataset.alertId = id;
    row.dataset.state = state;

    const head = el('div', 'alert-head');
    head.append(el('span', 'badge sev', sev), el('span', 'badge astate astate-' + state, state === 'update' ? 'open' : state),
      el('span', 'alert-title', str(a.title) || str(a.rule, 'Alert')));
    row.append(head);
    const msg = str(a.message).trim();
    if (msg) row.append(el('p', 'alert-msg', msg));
    const meta = el('div', 'alert-meta');
    const events = arr(a.event_ids).length;
    meta.append(el('span', 'event-camera', V.cameraName(a.camera)), timeEl(a.last_seen));
    if (events) meta.append(el('span', 'meta', events + (events === 1 ? ' event' : ' events')));
    row.append(meta);
    return row;
  }

  const isOpen = (entry) => entry.data.state !== 'resolved';
  const lastSeen = (entry) => { const d = parseTime(entry.data.last_seen); return d ? d.getTime() : 0; };

  // Open alerts first, then most recently seen; drop the oldest resolved rows beyond the cap.
  function sortAlerts() {
    const list = [...S.alerts.values()].sort((x, y) => (isOpen(y) - isOpen(x)) || (lastSeen(y) - lastSeen(x)));
    while (list.length > MAX_ALERTS && !isOpen(list[list.length - 1])) {
      const gone = list.pop();
      gone.row.remove();
      S.alerts.delete(String(gone.data.id));
    }
    const box = $('alerts');
    list.forEach((e) => box.appendChild(e.row));
    const open = list.filter(isOpen).length;
    $('alert-count').textContent = open ? open + ' open' : (list.length ? 'none open' : '');
  }

  async function loadHistory() {
    const gen = S.gen;
    // allSettled: one failing endpoint should not hide the other.
    const [ev, al] = await Promise.allSettled([getJSON('/api/events?limit=50'), getJSON('/api/alerts?limit=100')]);
    if (gen !== S.gen) return;
    if (ev.status === 'fulfilled') arr(obj(ev.value).items).forEach((e) => addEvent(e, false));  // newest first
    if (al.status === 'fulfilled') arr(obj(al.value).items).forEach((a) => upsertAlert(a, false));
    sortAlerts();
  }

  // ---- live websocket --------------------------------------------------------------

  function setConn(state, text) {
    const n = $('conn-status');
    n.dataset.state = state;
    n.textContent = text || state;
  }

  // Stream ids look like "<ms>-<seq>"; compare them numerically.
  function cmpCursor(a, b) {
    const [am, as] = a.split('-').map(Number);
    const [bm, bs] = b.split('-').map(Number);
    return am - bm || (as || 0) - (bs || 0);
  }

  // Events and alerts come from two streams sharing one resume id. A drop in the middle of a
  // batch can leave one stream's entries unsent while the other's later ids were sent, so we
  // resume a few seconds back and let the id/seq dedupe discard the repeats.
  function resumeCursor() {
    if (!S.cursor) return null;
    const ms = Number(S.cursor.split('-')[0]);
    return Number.isFinite(ms) ? Math.max(0, ms - RESUME_REWIND_MS) + '-0' : S.cursor;
  }

  function connectWs() {
    if (!S.running || S.ws) return;
    const since = resumeCursor();
    const url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws' +
      (since ? '?since=' + encodeURIComponent(since) : '');
    let ws;
    try { ws = new WebSocket(url); } catch (e) { scheduleReconnect(); return; }
    S.ws = ws;
    const gen = S.gen;
    ws.onmessage = (m) => { if (gen === S.gen) onWsMessage(m.data); };
    ws.onerror = () => { /* a close event always follows; handled there */ };
    ws.onclose = (e) => {
      if (S.ws === ws) S.ws = null;
      if (gen !== S.gen || !S.running) return;
      if (e.code === 4401) V.fire(verifySession); else scheduleReconnect();
    };
  }

  function onWsMessage(data) {
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'hello') {
      S.backoff = BACKOFF_MIN_MS;
      setConn('connected');
      if (msg.user) setUser(msg.user, msg.role);
      return;
    }
    if (typeof msg.cursor === 'string' && /^\d+(-\d+)?$/.test(msg.cursor) &&
        (!S.cursor || cmpCursor(msg.cursor, S.cursor) > 0)) S.cursor = msg.cursor;
    if (msg.type === 'event') { addEvent(msg, true); V.live.emit('event', msg); }
    else if (msg.type === 'alert') { upsertAlert(msg, true); sortAlerts(); V.live.emit('alert', msg); }
  }

  function scheduleReconnect() {
    if (!S.running || S.reconnectTimer) return;
    setConn('reconnecting', 'reconnecting…');
    const delay = S.backoff;
    S.backoff = Math.min(S.backoff * 2, BACKOFF_MAX_MS);
    S.reconnectTimer = setTimeout(() => { S.reconnectTimer = 0; connectWs(); }, delay);
  }

  // The socket refused us: find out whether the session expired or it was something else.
  async function verifySession() {
    try {
      await getJSON('/api/me');
      scheduleReconnect();
    } catch (e) {
      if (!(e instanceof Unauthorized)) scheduleReconnect();
    }
  }

  // ---- wiring ----------------------------------------------------------------------

  function boot() {
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const token = $('token-input').value.trim();
      if (!token) { $('login-error').textContent = 'Enter your access token.'; return; }
      V.fire(() => login(token));
    });
    $('logout-button').addEventListener('click', () => { V.fire(logout); });
    $('add-camera-button').addEventListener('click', (e) => { e.stopPropagation(); openCameraDialog(); });
    $('camera-dialog').addEventListener('close', () => { $('camera-dialog-body').replaceChildren(); });
    document.addEventListener('visibilitychange', () => refreshSnapshots());
    window.addEventListener('online', () => {
      // Back on the network: do not sit out the rest of a long backoff.
      if (S.running && S.reconnectTimer) { clearTimeout(S.reconnectTimer); S.reconnectTimer = 0; connectWs(); }
    });
    window.addEventListener('hashchange', () => {
      // A sign-in link opened while signed in: take the token out of the address bar.
      const token = takeFragmentToken();
      if (token && !S.running) { V.fire(() => login(token)); return; }
      route();
    });
    const token = takeFragmentToken();
    if (token) V.fire(() => login(token)); else V.fire(checkSession);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
