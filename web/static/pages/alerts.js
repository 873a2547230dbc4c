// Alerts page (#/alerts): filtered list with cursor paging, acknowledge (anyone) and
// resolve (admins), live updates of the rows shown.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, num, arr, obj, api, enc } = V;
  const SEVERITIES = ['info', 'warning', 'critical'];
  const STATES = ['open', 'update', 'resolved'];
  const PAGE = 100;

  // Filters survive leaving and coming back to the page.
  const filters = { state: '', severity: '', camera: '', latest: true };

  function mount(root, _param, ctx) {
    const st = { rows: new Map(), cursor: null, busy: false, fresh: 0, reqGen: 0 };

    const head = el('div', 'page-head');
    const h1 = el('h1', null, 'Alerts');
    const count = el('span', 'note');
    head.append(h1, count, el('span', 'spacer'));
    root.append(head);

    // Filters
    const form = el('form', 'filters');
    form.id = 'alerts-filter';
    const stateSel = V.select('state', [['', 'any state'], ['active', 'active (open + update)'], ['open', 'open'],
      ['update', 'update'], ['resolved', 'resolved']], filters.state);
    stateSel.id = 'alerts-state';
    const sevSel = V.select('severity', [['', 'any severity'], ...SEVERITIES.map((s) => [s, s])], filters.severity);
    sevSel.id = 'alerts-severity';
    const camOpts = V.cameraOptions();
    if (filters.camera && !camOpts.some(([id]) => id === filters.camera)) camOpts.push([filters.camera, filters.camera]);
    const camSel = V.select('camera', [['', 'all cameras'], ...camOpts], filters.camera);
    camSel.id = 'alerts-camera';
    const latest = V.checkbox('latest', 'latest state only', filters.latest);
    latest.input.id = 'alerts-latest';
    const refresh = V.button('Refresh', 'ghost', () => V.fire(() => load(false)));
    form.append(V.field('State', stateSel), V.field('Severity', sevSel), V.field('Camera', camSel), latest.wrap, refresh);
    form.addEventListener('submit', (e) => { e.preventDefault(); V.fire(() => load(false)); });
    for (const c of [stateSel, sevSel, camSel, latest.input]) {
      c.addEventListener('change', () => {
        Object.assign(filters, { state: stateSel.value, severity: sevSel.value, camera: camSel.value, latest: latest.input.checked });
        V.fire(() => load(false));
      });
    }
    root.append(form);

    // Bulk acknowledge: tick rows (or "all shown"), then one request for all of them.
    const bulk = el('div', 'bulk-bar');
    bulk.id = 'alerts-bulk';
    const allBox = V.checkbox('select_all', 'select all shown', false);
    allBox.input.id = 'alerts-select-all';
    const bulkBtn = V.button('Acknowledge selected', 'small', () => V.fire(ackSelected));
    bulkBtn.id = 'alerts-ack-selected';
    bulkBtn.disabled = true;
    const bulkMsg = el('span', 'muted');
    bulk.append(allBox.wrap, bulkBtn, bulkMsg);
    root.append(bulk);
    allBox.input.addEventListener('change', () => {
      for (const entry of st.rows.values()) if (!entry.data.acknowledged) entry.selected = allBox.input.checked;
      for (const entry of st.rows.values()) { const c = entry.row.querySelector('.select-box'); if (c) c.checked = !!entry.selected; }
      syncBulk();
    });
    function syncBulk() {
      const n = [...st.rows.values()].filter((e) => e.selected).length;
      bulkBtn.disabled = n === 0;
      bulkBtn.textContent = n ? 'Acknowledge selected (' + n + ')' : 'Acknowledge selected';
    }
    async function ackSelected() {
      const ids = [...st.rows.entries()].filter(([, e]) => e.selected).map(([id]) => id);
      if (!ids.length) return;
      bulkBtn.disabled = true;
      bulkMsg.textContent = 'Acknowledging ' + ids.length + '…';
      try {
        const res = obj(await api.post('/api/alerts/ack', { ids }));
        if (!ctx.alive) return;
        const ack = { by: str(res.by, V.session.name), at: num(res.at) !== null ? res.at : Date.now() / 1000 };
        for (const id of arr(res.acknowledged)) {
          const entry = st.rows.get(String(id));
          if (!entry) continue;
          entry.data = Object.assign({}, entry.data, { acknowledged: ack });
          entry.selected = false;
          rerender(entry, false);
        }
        allBox.input.checked = false;
        bulkMsg.textContent = arr(res.acknowledged).length + ' acknowledged.';
      } catch (e) {
        if (ctx.alive && !(e instanceof V.Unauthorized)) bulkMsg.textContent = V.errText(e, 'Acknowledge');
      } finally {
        syncBulk();
      }
    }

    const freshBar = el('div', 'fresh-bar');
    freshBar.hidden = true;
    const freshBtn = V.button('', 'ghost small', () => V.fire(() => load(false)));
    freshBar.append(freshBtn);
    root.append(freshBar);

    const msg = el('div', 'page-msgs');
    root.append(msg);
    const list = el('div', 'alert-list');
    list.id = 'alerts-list';
    root.append(list);
    const more = V.button('Load more', 'ghost', () => V.fire(() => load(true)));
    more.id = 'alerts-more';
    more.hidden = true;
    const foot = el('div', 'list-foot');
    foot.append(more);
    root.append(foot);

    async function load(append) {
      if (append && (st.busy || !st.cursor)) return;
      const gen = ++st.reqGen;  // a newer load (filters changed) wins over an older one
      st.busy = true;
      more.disabled = true;
      if (!append) { msg.replaceChildren(el('p', 'muted', 'Loading…')); }
      const q = { latest: filters.latest ? 'true' : 'false', state: filters.state, severity: filters.severity,
        camera: filters.camera, limit: PAGE, cursor: append ? st.cursor : '' };
      try {
        const res = obj(await api.get('/api/alerts' + V.query(q)));
        if (!ctx.alive || gen !== st.reqGen) return;
        msg.replaceChildren();
        if (!append) {
          list.replaceChildren();
          st.rows.clear();
          st.fresh = 0;
          freshBar.hidden = true;
        }
        for (const a of arr(res.items)) addRow(a);
        st.cursor = typeof res.next_cursor === 'string' && res.next_cursor ? res.next_cursor : null;
        more.hidden = !st.cursor;
        if (!list.childElementCount) list.append(el('p', 'muted empty', 'No alerts match these filters.'));
        updateCount();
      } catch (e) {
        if (!ctx.alive || gen !== st.reqGen || e instanceof V.Unauthorized) return;
        msg.replaceChildren(V.notice(V.errText(e, 'Loading alerts'), 'error'));
      } finally {
        if (gen === st.reqGen) { st.busy = false; more.disabled = false; }
      }
    }

    function updateCount() {
      const n = st.rows.size;
      const open = [...st.rows.values()].filter((r) => r.data.state !== 'resolved').length;
      count.textContent = n ? n + ' shown · ' + open + ' open' + (st.cursor ? ' · more available' : '') : '';
    }

    function addRow(a) {
      if (!V.isObj(a) || (typeof a.id !== 'string' && typeof a.id !== 'number')) return;
      const id = String(a.id);
      // Pages of "latest" results can repeat an alert (an older state on a later page): keep the first.
      if (st.rows.has(id)) return;
      const entry = { data: a, row: null, note: '' };
      entry.row = renderRow(entry);
      st.rows.set(id, entry);
      list.append(entry.row);
    }

    function rerender(entry, fresh) {
      const row = renderRow(entry);
      if (fresh) row.classList.add('fresh');
      entry.row.replaceWith(row);
      entry.row = row;
      updateCount();
    }

    function renderRow(entry) {
      const a = entry.data;
      const id = String(a.id);
      const sev = V.pick(a.severity, SEVERITIES, 'info');
      const state = V.pick(a.state, STATES, 'open');
      const row = el('article', 'alert alert-row sev-' + sev + ' state-' + state);
      row.dataset.alertId = id;
      if (!a.acknowledged) {
        const sel = el('input', 'select-box');
        sel.type = 'checkbox';
        sel.checked = !!entry.selected;
        sel.setAttribute('aria-label', 'Select alert ' + id);
        sel.addEventListener('change', () => { entry.selected = sel.checked; syncBulk(); });
        row.append(sel);
      }
      row.dataset.state = state;
      row.dataset.acknowledged = a.acknowledged ? 'true' : 'false';

      const snap = V.safeUrl(a.snapshot_url);
      const pm = snap ? /^\/api\/packets\/([^/]+)\/frames\//.exec(snap) : null;
      if (snap) {
        const thumb = el('figure', 'thumb alert-thumb');
        const link = el('a');
        if (pm) { link.href = V.packetHref(decodeSafe(pm[1])); link.title = 'Inspect the latest packet'; }
        else { link.href = snap; link.target = '_blank'; link.rel = 'noopener'; }
        const img = el('img');
        img.loading = 'lazy';
        img.decoding = 'async';
        img.width = 120; img.height = 68;
        img.alt = 'latest keyframe';
        img.addEventListener('error', () => thumb.classList.add('missing'), { once: true });
        img.src = snap;
        link.append(img);
        thumb.append(link);
        row.append(thumb);
      } else row.classList.add('no-thumb');

      const main = el('div', 'alert-main');
      const headRow = el('div', 'alert-head');
      headRow.append(el('span', 'badge sev', sev),
        el('span', 'badge astate astate-' + state, state === 'update' ? 'open' : state),
        el('span', 'alert-title', str(a.title) || str(a.rule, 'Alert')));
      if (a.rule) {
        const r = el('span', 'chip rule', '⚑ ' + str(a.rule));
        r.title = 'rule';
        headRow.append(r);
      }
      main.append(headRow);
      const m = str(a.message).trim();
      if (m) main.append(el('p', 'alert-msg', m));

      const meta = el('div', 'alert-meta');
      meta.append(V.link(V.cameraHref(a.camera), V.cameraName(a.camera), 'event-camera'));
      const first = V.timeEl(a.first_seen);
      const last = V.timeEl(a.last_seen);
      meta.append(el('span', null, 'first'), first, el('span', null, 'last'), last);
      const evIds = arr(a.event_ids);
      if (evIds.length) {
        const nEv = num(a.event_count) || evIds.length;  // event_ids keeps only the latest 50
        meta.append(el('span', 'meta', nEv + (nEv === 1 ? ' event' : ' events')));
        const lastEv = str(evIds[evIds.length - 1]);
        const insp = V.link('#', 'inspect latest', 'inspect');
        insp.addEventListener('click', (e) => { e.preventDefault(); V.fire(() => openEvent(lastEv, entry)); });
        meta.append(insp);
      }
      if (num(a.seq) !== null) meta.append(el('span', 'meta', 'change #' + a.seq));
      main.append(meta);

      // Acknowledgement and actions
      const actions = el('div', 'alert-actions');
      const ack = V.isObj(a.acknowledged) ? a.acknowledged : null;
      if (ack) {
        const info = el('span', 'ack-info', '✓ Acknowledged by ' + str(ack.by, 'someone') + ' ');
        info.append(V.timeEl(ack.at));
        actions.append(info);
      } else {
        const b = V.button('Acknowledge', 'ack-button small', () => V.fire(() => acknowledge(entry, b)));
        actions.append(b);
      }
      if (V.isAdmin() && state !== 'resolved') {
        const b = V.button('Resolve', 'resolve-button small ghost', () => V.fire(() => resolve(entry, b)));
        actions.append(b);
      }
      const clipSlot = el('div', 'clip-slot');
      actions.append(V.clipToggle('/api/alerts/' + enc(id) + '/clip.webm', 'vigil-' + id, clipSlot));
      const note = el('span', 'row-msg error-text');
      note.textContent = entry.note;
      note.hidden = !entry.note;
      actions.append(note);
      main.append(actions, clipSlot);
      row.append(main);
      return row;
    }

    async function acknowledge(entry, btn) {
      btn.disabled = true;
      btn.textContent = 'Acknowledging…';
      try {
        const res = obj(await api.post('/api/alerts/' + enc(String(entry.data.id)) + '/ack'));
        if (!ctx.alive) return;
        const ack = V.isObj(res.acknowledged) ? res.acknowledged : { by: V.session.name, at: Date.now() / 1000 };
        entry.data = Object.assign({}, entry.data, { acknowledged: ack });
        entry.note = '';
        rerender(entry, false);
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        entry.note = V.errText(e, 'Acknowledge');
        rerender(entry, false);
      }
    }

    async function resolve(entry, btn) {
      btn.disabled = true;
      btn.textContent = 'Resolving…';
      try {
        const res = await api.post('/api/alerts/' + enc(String(entry.data.id)) + '/resolve');
        if (!ctx.alive) return;
        const next = V.isObj(res) && V.isObj(res.alert) ? res.alert : res;
        const merged = Object.assign({}, entry.data);
        if (V.isObj(next) && String(next.id) === String(entry.data.id) && typeof next.state === 'string') Object.assign(merged, next);
        else merged.state = 'resolved';
        if (!('acknowledged' in obj(next))) merged.acknowledged = entry.data.acknowledged;
        entry.data = merged;
        entry.note = '';
        rerender(entry, false);
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        entry.note = e instanceof V.ApiError && e.missing
          ? 'Resolve is not available on this server (' + e.message + ')' : V.errText(e, 'Resolve');
        rerender(entry, false);
      }
    }

    async function openEvent(eventId, entry) {
      try {
        const res = obj(await api.get('/api/events/' + enc(eventId)));
        const pid = obj(res.event).packet_id || obj(res.packet).id;
        if (!ctx.alive) return;
        if (pid) location.hash = V.packetHref(str(pid));
        else { entry.note = 'That event has no packet.'; rerender(entry, false); }
      } catch (e) {
        if (!ctx.alive || e instanceof V.Unauthorized) return;
        entry.note = V.errText(e, 'Opening the event');
        rerender(entry, false);
      }
    }

    // Live changes: rows on screen update in place; others are counted for a refresh.
    ctx.onDispose(V.live.on('alert', (a) => {
      if (!V.isObj(a) || a.id === undefined || a.id === null) return;
      const entry = st.rows.get(String(a.id));
      if (entry) {
        const seq = num(a.seq), cur = num(entry.data.seq);
        if (seq !== null && cur !== null && seq <= cur) return;
        entry.data = Object.assign({}, a, { acknowledged: entry.data.acknowledged !== undefined ? entry.data.acknowledged : null });
        rerender(entry, true);
        return;
      }
      if (filters.camera && str(a.camera) !== filters.camera) return;
      if (filters.severity && str(a.severity) !== filters.severity) return;
      const stateOk = !filters.state || a.state === filters.state || (filters.state === 'active' && a.state !== 'resolved');
      if (!stateOk) return;
      // A new alert: shown at the top at once (the page is live, no refresh needed).
      const empty = list.querySelector('.empty');
      if (empty) empty.remove();
      const fresh = { data: Object.assign({}, a, { acknowledged: null }), row: null, note: '' };
      fresh.row = renderRow(fresh);
      fresh.row.classList.add('fresh');
      st.rows.set(String(a.id), fresh);
      list.prepend(fresh.row);
      updateCount();
    }));

    V.fire(() => load(false));
  }

  function decodeSafe(s) {
    try { return decodeURIComponent(s); } catch (e) { return s; }
  }

  V.pages.alerts = { view: 'alerts-view', nav: 'nav-alerts', title: 'Alerts', mount };
})();
